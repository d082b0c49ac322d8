import type { Test } from 'tap'
import { deriveCacheKeys } from '../../src/cache/crypto.js'
import { RedisTokenStore } from '../../src/cache/redis-store.js'
import type { Config } from '../../src/config/index.js'
import { RedisCounters } from '../../src/counters/redis-counters.js'
import { createLogger } from '../../src/logger.js'
import { startSimulator, type Simulator } from '../../src/simulator/index.js'
import { RedisConnection } from '../../src/state/redis-connection.js'
import { answerState } from '../../src/upstream/ledger.js'
import { RedisLedger } from '../../src/upstream/redis-ledger.js'
import { quotaLedgerContract } from '../upstream/quota-ledger.contract.js'
import { overrideMacKey, RedisOverrideStore } from '../../src/state/redis-overrides.js'
import { sharedRateLimitStore, type RateLimitStore } from '../../src/state/rate-limit-store.js'
import { countersContract } from '../counters/counters.contract.js'
import { tokenStoreContract } from '../cache/token-store.contract.js'
import { acme, API_KEY, configFor } from '../helpers/broker.js'
import type { RedisBackend } from '../helpers/redis-backends.js'
import { until } from '../helpers/redis-topologies.js'
import { startReplica, type Replica } from './replicas.js'

/** A max no test reaches: a take that is always counted. */
const UNLIMITED = Number.MAX_SAFE_INTEGER

/*
 * The Redis-backed state, run against any deployment (one Redis, a Cluster,
 * a Sentinel-managed primary): the same suites, only the client differs.
 * On a Cluster a script whose keys span two slots fails with CROSSSLOT, so a
 * suite that passes there proves the key layout.
 */

const keys = deriveCacheKeys({ encryptionKey: undefined, apiKey: 'tt-api-key-for-redis-suites' })
const silent = createLogger('silent')
export const ADMIN = 'admin-token-for-redis-suites-0123456789'

/** A connection of the broker's own kind (fail-fast options, health) on the backend. */
async function connection(t: Test, backend: RedisBackend, prefix: string): Promise<RedisConnection> {
  const c = await RedisConnection.open(backend.target, silent, { keyPrefix: prefix, connectTimeoutMs: 5000 })
  t.teardown(() => c.close())
  t.equal(c.available, true, `connected to ${c.target}`)
  return c
}

export function tokenStoreSuite(t: Test, backend: RedisBackend): void {
  tokenStoreContract(
    t,
    `RedisTokenStore on ${backend.name}`,
    async (t) => {
      const { redis, prefix } = await backend.client(t)
      return new RedisTokenStore({ redis, keys, prefix })
    },
    { exclusiveLock: true },
  )
  t.test(`RedisTokenStore on ${backend.name}: one subject's keys share one hash tag; other subjects spread`, async (t) => {
    const { redis, prefix } = await backend.client(t)
    const store = new RedisTokenStore({ redis, keys, prefix })
    const token = { token: 'eyJ.x.y', expiresAt: 2e9, issuedAt: null, expireAfter: 600 }
    for (const subject of ['alice', 'bob', 'carol', 'dave']) {
      await store.set({ tenantId: 'acme', subject, grant: 'a1|1|600' }, token, 10_000)
      await store.set({ tenantId: 'acme', subject, grant: 'a2|1|600' }, token, 10_000)
    }
    await store.acquireMintLock({ tenantId: 'acme', subject: 'alice', grant: 'a1|1|600' }, 10_000)
    const tags = (await backend.keys(redis, prefix)).map((k) => /\{([^}]+)\}/.exec(k)?.[1])
    t.equal(tags.length, 4 * 3 + 2, 'two tokens and an index per subject, one lock and the set that names it')
    t.equal(new Set(tags).size, 4, 'one tag per subject')
    t.same(await store.purgeSubject('acme', 'alice'), { tokens: 2, minting: true }, 'the purge script reaches every key of its subject, the lock too')
  })
}

export function countersSuite(t: Test, backend: RedisBackend): void {
  countersContract(t, `RedisCounters on ${backend.name}`, async (t) => {
    const { redis, prefix } = await backend.client(t)
    return new RedisCounters({ redis, prefix })
  })
  t.test(`RedisCounters on ${backend.name}: two replicas count into one window`, async (t) => {
    const { redis, prefix } = await backend.client(t)
    const a = new RedisCounters({ redis, prefix })
    const b = new RedisCounters({ redis, prefix })
    await a.take('mints:acme', 60_000, UNLIMITED)
    t.equal((await b.take('mints:acme', 60_000, UNLIMITED)).count, 2)
  })
}

export function ledgerSuite(t: Test, backend: RedisBackend): void {
  quotaLedgerContract(t, `RedisLedger on ${backend.name}`, async (t) => {
    const { redis, prefix } = await backend.client(t)
    return new RedisLedger({ redis, prefix, keyId: 'k' })
  })
  t.test(`RedisLedger on ${backend.name}: a reservation taken by one replica counts for the other`, async (t) => {
    const { redis, prefix } = await backend.client(t)
    const a = new RedisLedger({ redis, prefix, keyId: 'k' })
    const b = new RedisLedger({ redis, prefix, keyId: 'k' })
    const now = Date.now()
    const reset = Math.ceil(now / 1000) + 60
    await a.record(undefined, answerState({ kind: 'ok', sentAt: now, receivedAt: now, quota: { limit: 10, remaining: 1, reset } }), now)
    t.match(await a.reserve(now, 5000), { admission: { ok: true } })
    t.match(await b.reserve(now, 5000), { admission: { ok: false, reason: 'spent' } })
  })
}

const count = (store: RateLimitStore, key: string, method: 'incr' | 'read' = 'incr') =>
  new Promise<number>((resolve, reject) => store[method](key, (err, res) => (err ? reject(err) : resolve(res?.current ?? -1)), 60_000, 10))

export function rateLimitStoreSuite(t: Test, backend: RedisBackend): void {
  t.test(`rate-limit store on ${backend.name}: replicas count into one window, route limiters apart`, async (t) => {
    const { redis, prefix } = await backend.client(t)
    const limiter = async () => {
      const c = await connection(t, backend, prefix)
      const Store = sharedRateLimitStore(c.client, c, `${prefix}rl:`)
      return { any: new Store({}).child({ routeInfo: {} }), route: new Store({}).child({ routeInfo: { method: 'POST', url: '/v1/token' } }) }
    }
    const [a, b] = [await limiter(), await limiter()]
    t.equal(await count(a.any, 's:{acme}:h1'), 1)
    t.equal(await count(b.any, 's:{acme}:h1'), 2)
    t.equal(await count(a.any, 's:{acme}:h1', 'read'), 2, 'read does not count')
    t.equal(await count(b.route, 't:{acme}'), 1)
    t.equal(await count(a.route, 't:{acme}'), 2)
    t.same((await backend.keys(redis, prefix)).filter((k) => k.includes(':rl:')).sort(), [`${prefix}rl:POST/v1/token:t:{acme}`, `${prefix}rl:s:{acme}:h1`])
  })
}

export function overrideStoreSuite(t: Test, backend: RedisBackend): void {
  t.test(`override store on ${backend.name}: replicas share patches, a stale save is refused`, async (t) => {
    const { prefix } = await backend.client(t)
    const c = await connection(t, backend, prefix)
    const key = overrideMacKey({ cacheEncryptionKey: undefined, apiKey: API_KEY })
    const a = new RedisOverrideStore(c.client, c, prefix, key)
    const b = new RedisOverrideStore(c.client, c, prefix, key)
    t.equal(await b.version(), '0')
    const v1 = await a.save('acme', { limits: { perSubjectPerMinute: 5 } }, '0')
    t.not(v1, null)
    t.equal(await b.version(), v1)
    t.same((await b.load()).patches, new Map([['acme', { limits: { perSubjectPerMinute: 5 } }]]))
    t.equal(await b.save('acme', { enabled: false }, '0'), null, 'a save based on an old version is refused')
  })
}

/** Two replicas (createState + buildApp, as main.ts builds them) on the backend, with a simulator and an admin token. */
export async function replicaPair(
  t: Test,
  backend: RedisBackend,
  opts: { perSubjectPerMinute?: number; prefix?: string; redis?: { probeAfterMs?: number } } = {},
): Promise<{ a: Replica; b: Replica; sim: Simulator; config: Config; prefix: string }> {
  const prefix = opts.prefix ?? (await backend.client(t)).prefix
  const sim = await startSimulator({ apiKeys: [API_KEY], perMinute: 100_000 })
  t.teardown(() => sim.close())
  const config = configFor(sim.url, [acme({ limits: { perSubjectPerMinute: opts.perSubjectPerMinute ?? 1000, perTenantPerMinute: 100_000 } })], {
    redis: backend.target,
    adminToken: ADMIN,
    logLevel: 'info',
  })
  // Room for a loaded CI machine: an upstream timeout here would be a 503 that has nothing to do with Redis.
  config.upstream.timeoutMs = 5000
  const options = { keyPrefix: prefix, redis: { connectTimeoutMs: 5000, ...opts.redis } }
  const a = await startReplica(t, config, options)
  const b = await startReplica(t, config, options)
  return { a, b, sim, config, prefix }
}

/** Concurrent requests for `subjects`, `each` per subject, alternating between the replicas. */
export async function coldBurst(replicas: Replica[], subjects: string[], each: number) {
  const answers = await Promise.all(
    subjects.flatMap((subject, s) =>
      Array.from({ length: each }, (_, i) => (replicas[(s + i) % replicas.length] as Replica).token(subject).then((r) => ({ ...r, subject }))),
    ),
  )
  const tokensPer = new Map<string, Set<string>>()
  for (const r of answers) if (r.status === 200) (tokensPer.get(r.subject) ?? tokensPer.set(r.subject, new Set()).get(r.subject))?.add(r.body.data.token)
  // Statuses with their codes, so that a failure says which refusal it was.
  const statuses = [...new Set(answers.map((r) => (r.status === 200 ? 200 : `${r.status} ${r.body?.code} ${r.body?.message}`)))]
  return { answers, statuses, mintsPerKey: Math.max(0, ...[...tokensPer.values()].map((s) => s.size)) }
}

export const admin = (replica: Replica, method: 'GET' | 'PATCH' | 'DELETE', url: string, body?: object) =>
  replica.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
    ...(body !== undefined && { payload: JSON.stringify(body) }),
  })

/** A PATCH through `from` is in force on `to` (polled with a deadline: the replicas sync every second). */
export async function patchSeen(from: Replica, to: Replica, perSubjectPerMinute: number): Promise<number> {
  const res = await admin(from, 'PATCH', '/admin/tenants/acme', { limits: { perSubjectPerMinute } })
  if (res.statusCode !== 200) throw new Error(`PATCH answered ${res.statusCode}: ${res.body}`)
  return until(
    'the PATCH is seen by the other replica',
    async () => (await admin(to, 'GET', '/admin/tenants/acme')).json().limits.perSubjectPerMinute === perSubjectPerMinute,
    6000,
  )
}

/**
 * Two broker replicas on the backend: a cold burst costs one mint per key,
 * the per-subject limit is shared, a purge and a PATCH made through one are
 * seen by the other.
 */
export function sharedStateSuite(t: Test, backend: RedisBackend): void {
  t.test(`two replicas on ${backend.name}: one mint per key, one limit, purge and PATCH seen by the other`, async (t) => {
    const { a, b, sim } = await replicaPair(t, backend, { perSubjectPerMinute: 12 })
    t.equal(await a.ready(), 200)
    t.equal(await b.ready(), 200)

    const subjects = Array.from({ length: 8 }, (_, i) => `viewer-${i}`)
    const burst = await coldBurst([a, b], subjects, 6)
    t.same(burst.statuses, [200], `${burst.answers.length} answers, all 200`)
    t.equal(sim.stats.mints, subjects.length, `${burst.answers.length} concurrent requests for ${subjects.length} keys: one mint per key`)
    t.equal(burst.mintsPerKey, 1, 'one token per key on both replicas')

    const carol = []
    for (let i = 0; i < 14; i++) carol.push((await (i % 2 === 0 ? a : b).token('carol')).status)
    t.same(carol, [...Array(12).fill(200), 429, 429], 'the limit of 12 a minute holds across the replicas')

    const before = (await a.token('viewer-0')).body.data.token
    const purge = await admin(a, 'DELETE', '/admin/tenants/acme/subjects/viewer-0/tokens')
    t.equal(purge.statusCode, 204, 'purged through a')
    const after = await b.token('viewer-0')
    t.equal(after.body.data.cached, false, 'b mints anew after the purge through a')
    t.not(after.body.data.token, before)

    const ms = await patchSeen(a, b, 7)
    t.pass(`a PATCH through a was in force on b after ${ms} ms`)
    t.equal((await b.token('patched')).headers['ratelimit-limit'], '7')
  })

  // CONTRACT "200 response": X-RateLimit-* are the shared ledger's and never go back up within a window, for a client
  // of both replicas too: a hit right after the other replica's mint answers what that mint saw (on one Redis the
  // count reads the ledger's window along; on a Cluster the hit reads it with a command of its own, in the same turn).
  t.test(`two replicas on ${backend.name}: a hit right after the other replica's mint shows that mint's Remaining`, async (t) => {
    const { a, b } = await replicaPair(t, backend)
    const window = (r: { headers: Record<string, unknown> }) => ({ remaining: Number(r.headers['x-ratelimit-remaining']), reset: Number(r.headers['x-ratelimit-reset']) })
    t.equal((await a.token('alice')).status, 200)
    t.equal((await a.token('alice')).body.data.cached, true)
    for (let i = 0; i < 6; i++) {
      const minted = window(await b.token(`other-${i}`))
      const hit = await a.token('alice')
      t.equal(hit.body.data.cached, true)
      const seen = window(hit)
      t.ok(seen.reset >= minted.reset, `round ${i}: the hit's window is not older than the mint's (${seen.reset} vs ${minted.reset})`)
      if (seen.reset === minted.reset) t.ok(seen.remaining <= minted.remaining, `round ${i}: Remaining ${seen.remaining} after the other replica's ${minted.remaining}`)
    }
  })
}
