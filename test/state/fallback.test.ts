import t from 'tap'
import { MemoryTokenStore } from '../../src/cache/memory-store.js'
import type { CachedToken, MintLock, TokenKey, TokenStore } from '../../src/cache/token-store.js'
import type { Counters } from '../../src/counters/counters.js'
import { BrokerError } from '../../src/errors.js'
import { FallbackCounters } from '../../src/state/fallback-counters.js'
import { FallbackTokenStore } from '../../src/state/fallback-store.js'
import type { RedisHealth } from '../../src/state/health.js'
import { until } from '../helpers/redis-topologies.js'

/** A max no test reaches: a take that is always counted. */
const UNLIMITED = Number.MAX_SAFE_INTEGER

/** A health switch the test flips, recording reported failures. */
class FakeHealth implements RedisHealth {
  available = true
  readonly failures: unknown[] = []
  readonly #listeners: Array<() => void> = []
  noteFailure(err: unknown): void {
    this.failures.push(err)
  }
  onRecover(listener: () => void): void {
    this.#listeners.push(listener)
  }
  recover(): void {
    this.available = true
    for (const l of this.#listeners) l()
  }
}
const fakeHealth = () => new FakeHealth()

const fail = async (): Promise<never> => {
  throw new Error('Connection is closed.')
}
/** A shared store that fails every call, counting them. */
function brokenStore(): TokenStore & { calls: number } {
  const s = { calls: 0 } as TokenStore & { calls: number }
  for (const m of ['get', 'set', 'delete', 'purgeSubject', 'generation', 'setFailure', 'landed', 'acquireMintLock', 'waitForToken'] as const) {
    ;(s as unknown as Record<string, unknown>)[m] = () => {
      s.calls++
      return fail()
    }
  }
  s.close = async () => {}
  return s
}

const key: TokenKey = { tenantId: 'acme', subject: 'alice', grant: 'a1|1|600' }
const token: CachedToken = { token: 'tok', expiresAt: 2e9, issuedAt: null, expireAfter: 600 }
/** The token as either store answers it: with its JSON literal, made once by the store. */
const served: CachedToken = { ...token, tokenJson: '"tok"' }

t.test('store: a failing Redis becomes the local store, never an error', async (t) => {
  const health = fakeHealth()
  const shared = brokenStore()
  const store = new FallbackTokenStore(shared, health)
  t.equal(await store.get(key), undefined, 'a read is a miss')
  await store.set(key, token, 10_000)
  t.strictSame(await store.get(key), served, 'the write landed locally and is served from there')
  const lock: MintLock | null = await store.acquireMintLock(key, 1000)
  t.ok(lock, 'the local lock is granted')
  t.strictSame(await store.waitForToken(key, 1000), { token: served })
  t.equal(health.failures.length, 5, 'each failure reported to the health')
})

t.test('store: while Redis is known to be away it is not even tried', async (t) => {
  const health = fakeHealth()
  health.available = false
  const shared = brokenStore()
  const store = new FallbackTokenStore(shared, health)
  await store.set(key, token, 10_000)
  t.strictSame(await store.get(key), served)
  t.equal(shared.calls, 0)
})

t.test('store: the local store is dropped when Redis returns (it missed purges made elsewhere)', async (t) => {
  const health = fakeHealth()
  health.available = false
  const store = new FallbackTokenStore(brokenStore(), health)
  await store.set(key, token, 10_000)
  health.recover()
  health.available = false
  t.equal(await store.get(key), undefined)
})

t.test('store: a purge that cannot reach Redis is a 503 with Retry-After, after purging locally', async (t) => {
  const health = fakeHealth()
  health.available = false
  const store = new FallbackTokenStore(brokenStore(), health)
  await store.set(key, token, 10_000)
  const err = await store.purgeSubject('acme', 'alice').catch((e: unknown) => e)
  t.ok(err instanceof BrokerError)
  t.match(err, { statusCode: 503, headers: { 'retry-after': 5 } })
  t.equal(await store.get(key), undefined, 'the local copy is gone')
})

// Purge generations: Redis and this process's store count apart, and a recovery starts a new local store. A mint
// reads one before it begins and stores its token only if the subject was not purged since (README, "Revocation
// holds"); a generation must never be checked against a count it was not read from.

/** The fallback store over a memory store standing in for Redis (the same generation rules, its own count). */
function overMemoryRedis(): { health: FakeHealth; redis: MemoryTokenStore; store: FallbackTokenStore } {
  const health = fakeHealth()
  const redis = new MemoryTokenStore()
  return { health, redis, store: new FallbackTokenStore(redis, health) }
}
/** Purges on this replica while Redis is away (each answered 503): the local count moves on by `n`. */
const purgeLocally = async (store: FallbackTokenStore, subject: string, n = 1) => {
  for (let i = 0; i < n; i++) await store.purgeSubject('acme', subject).catch(() => undefined)
}

t.test('store: a generation read while Redis was away is not checked against Redis\'s count', async (t) => {
  const { health, redis, store } = overMemoryRedis()
  health.available = false
  await purgeLocally(store, 'bob', 2) // the local count is at 2
  const generation = await store.generation(key) // the mint for alice begins
  health.recover()
  // After the recovery alice is purged through another replica, twice: Redis's count is at 2 too.
  for (let i = 0; i < 2; i++) await redis.purgeSubject('acme', 'alice')
  t.equal(await store.set(key, token, 10_000, generation), false, 'the token is not kept: Redis\'s purges since the mint began are unknown')
  t.equal(await store.get(key), undefined, 'and not served')
})

t.test('store: a generation read while Redis was away, Redis back: kept when Redis holds no purge of the subject', async (t) => {
  const { health, redis, store } = overMemoryRedis()
  await redis.purgeSubject('acme', 'bob') // another subject's purges do not matter
  health.available = false
  await purgeLocally(store, 'bob')
  const generation = await store.generation(key)
  health.recover()
  t.equal(await store.set(key, token, 10_000, generation), true, 'Redis never saw alice purged, so no purge came during the mint: kept, no extra mint')
  t.strictSame(await redis.get(key), served, 'in Redis')
})

t.test('store: a generation read from Redis is not checked locally: a token whose store went away is not kept', async (t) => {
  const { health, redis, store } = overMemoryRedis()
  const generation = await store.generation(key) // read from Redis
  await redis.purgeSubject('acme', 'alice') // another replica purges alice; the purge is answered 204
  health.available = false // and Redis goes away before this mint stores its token
  t.equal(await store.set(key, token, 10_000, generation), false, 'not stored locally: only Redis knew of the purge')
  t.equal(await store.get(key), undefined, 'so the purged subject is not served from local state during the outage')
  const sharedKey: TokenKey = { ...key, subject: null, grant: 'shared-by-grant' }
  t.equal(await store.set(sharedKey, token, 10_000, await store.generation(sharedKey)), true, 'a key shared by grant has no purges: kept')
})

t.test('store: a generation read from one local store is not checked against the next one', async (t) => {
  const health = fakeHealth()
  const store = new FallbackTokenStore(brokenStore(), health)
  health.available = false
  await purgeLocally(store, 'bob', 3)
  const generation = await store.generation(key) // the first local store's count: 3
  health.recover()
  health.available = false // a second outage: a new local store, its count from 0
  await purgeLocally(store, 'alice') // alice purged at 1 there
  t.equal(await store.set(key, token, 10_000, generation), false)
  t.equal(await store.get(key), undefined)
})

t.test('store: within one outage the local generations still work both ways', async (t) => {
  const health = fakeHealth()
  const store = new FallbackTokenStore(brokenStore(), health)
  health.available = false
  const before = await store.generation(key)
  t.equal(await store.set(key, token, 10_000, before), true, 'no purge since: kept')
  t.strictSame(await store.get(key), served)
  const again = await store.generation(key)
  await purgeLocally(store, 'alice')
  t.equal(await store.set(key, token, 10_000, again), false, 'purged here since the read: not kept')
  t.equal(await store.get(key), undefined)
  const healthy = overMemoryRedis()
  t.equal(await healthy.store.set(key, token, 10_000, await healthy.store.generation(key)), true, 'and with Redis up, Redis\'s own check as before')
  t.strictSame(await healthy.redis.get(key), served)
})

t.test('store: a shared mint lock whose release cannot reach Redis is released when Redis returns', async (t) => {
  const health = fakeHealth()
  let redisUp = true
  const releases: string[] = []
  const shared = brokenStore()
  shared.acquireMintLock = async () => ({
    release: async () => {
      releases.push(redisUp ? 'released' : 'failed')
      if (!redisUp) throw new Error('Connection is closed.')
    },
  })
  const store = new FallbackTokenStore(shared, health)
  const lock = await store.acquireMintLock(key, 5000)
  const short = await store.acquireMintLock({ ...key, grant: 'short' }, 1)
  // The primary dies while the mints are in flight: the releases go nowhere.
  redisUp = false
  health.available = false
  await t.rejects(lock?.release() ?? Promise.resolve(), 'the failed release is reported to the caller')
  await new Promise((r) => setTimeout(r, 5))
  await t.rejects(short?.release() ?? Promise.resolve())
  t.equal(health.failures.length, 2, 'and to the health')
  redisUp = true
  health.recover()
  await new Promise((r) => setImmediate(r))
  t.same(releases, ['failed', 'failed', 'released'], 'the lock still alive is released once Redis is back; the lapsed one is left alone')
  health.recover()
  await new Promise((r) => setImmediate(r))
  t.equal(releases.length, 3, 'released once, not at every recovery')
})

t.test('store: a release that failed while Redis stayed available is sent again shortly', async (t) => {
  const health = fakeHealth()
  const releases: string[] = []
  const shared = brokenStore()
  shared.acquireMintLock = async () => ({
    release: async () => {
      releases.push(releases.length === 0 ? 'failed' : 'released')
      if (releases.length === 1) throw new Error('Command timed out')
    },
  })
  const store = new FallbackTokenStore(shared, health)
  const lock = await store.acquireMintLock(key, 5000)
  await t.rejects(lock?.release() ?? Promise.resolve())
  await until('sent again', async () => releases.length === 2, 2000, 20)
  t.same(releases, ['failed', 'released'])
})

t.test('store and counters: close is idempotent and closes the shared one once', async (t) => {
  let closes = 0
  const shared = { ...brokenStore(), close: async () => void closes++ }
  const store = new FallbackTokenStore(shared, fakeHealth())
  await Promise.all([store.close(), store.close()])
  await store.close()
  t.equal(closes, 1)
  const sharedCounters = { close: async () => void closes++ } as unknown as Counters
  const counters = new FallbackCounters(sharedCounters, fakeHealth())
  await counters.close()
  await counters.close()
  t.equal(closes, 2)
})

t.test('counters: a failing Redis counts locally', async (t) => {
  const health = fakeHealth()
  const shared = { take: fail, peek: fail, close: async () => {} } satisfies Counters
  const counters = new FallbackCounters(shared, health)
  t.equal((await counters.take('m', 60_000, UNLIMITED)).count, 1)
  t.equal((await counters.take('m', 60_000, UNLIMITED)).count, 2)
  t.equal((await counters.peek('m')).count, 2)
  t.equal(health.failures.length, 3)
})
