import t from 'tap'
import { Redis } from 'ioredis'
import { createLogger } from '../../src/logger.js'
import { startSimulator } from '../../src/simulator/index.js'
import { createState } from '../../src/state/index.js'
import { acme, API_KEY, configFor } from '../helpers/broker.js'
import { assertNothingInClear, redisForTest, startRedisServer, TEST_REDIS_URL } from '../helpers/redis.js'
import { ADMIN, admin } from './redis-suites.js'
import { startReplica } from './replicas.js'

t.test('without REDIS_URL the state is memory, always ready, and closes', async (t) => {
  const state = await createState(configFor('http://127.0.0.1:1', [acme()]), createLogger('silent'))
  t.equal(state.store.constructor.name, 'MemoryTokenStore')
  t.equal(state.counters.constructor.name, 'MemoryCounters')
  t.equal(state.rateLimitStore, undefined)
  t.same(state.readiness, [])
  await state.close()
})

t.test('two replicas on one Redis share tokens, the mint lock and the per-subject limit', async (t) => {
  const { redis, prefix } = await redisForTest(t)
  const sim = await startSimulator({ apiKeys: [API_KEY], perMinute: 1000 })
  t.teardown(() => sim.close())
  const config = configFor(sim.url, [acme({ limits: { perSubjectPerMinute: 12 } })], { redisUrl: TEST_REDIS_URL, logLevel: 'info' })
  const [a, b] = [await startReplica(t, config, { keyPrefix: prefix }), await startReplica(t, config, { keyPrefix: prefix })]
  t.equal(await a.ready(), 200)

  const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).token('alice')))
  t.same(answers.map((r) => r.status), Array(10).fill(200))
  t.equal(sim.stats.mints, 1, 'ten concurrent requests on two replicas: one upstream mint')
  t.equal(new Set(answers.map((r) => r.body.data.token)).size, 1, 'everyone got the same token')

  const carol = []
  for (let i = 0; i < 15; i++) carol.push(await (i % 2 === 0 ? a : b).token('carol'))
  t.same(carol.map((r) => r.status), [...Array(12).fill(200), 429, 429, 429], 'the limit of 12 holds across replicas')
  t.match(carol[12], { body: { code: 'RATE_LIMITED' }, headers: { 'retry-after': /^\d+$/ } })

  const secrets = [API_KEY, 'alice', 'carol', ...answers.map((r) => r.body.data.token as string)]
  t.ok((await assertNothingInClear(t, redis, secrets, prefix)) >= 4, 'tokens, indexes, rate-limit and quota keys looked at')
})

t.test('a cache hit on one Redis costs one command: the count reads the token along; a purge still holds', async (t) => {
  const server = await startRedisServer(t)
  const sim = await startSimulator({ apiKeys: [API_KEY], perMinute: 1000 })
  t.teardown(() => sim.close())
  const config = configFor(sim.url, [acme()], { redisUrl: server.url, adminToken: ADMIN, logLevel: 'info' })
  const [a, b] = [await startReplica(t, config), await startReplica(t, config)]
  const first = await a.token('alice')
  t.equal(first.body.data.cached, false)
  await a.token('alice') // the ledger's first read, the scripts loaded
  // MONITOR shows every command a client sent; those a script ran come from "lua" and are not counted.
  const client = new Redis(server.url)
  const monitor = await client.monitor()
  t.teardown(() => (monitor.disconnect(), client.disconnect()))
  const sent: string[] = []
  const tokenReads: string[] = []
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    if (source === 'lua') return
    sent.push(String(args[0]).toLowerCase())
    // Each replica also polls the overrides' version (a GET of `{overrides}:version`) once a second: not a token read.
    if (String(args[0]).toLowerCase() === 'get' && /:tok:/.test(String(args[1]))) tokenReads.push(String(args[1]))
  })
  const HITS = 40
  for (let i = 0; i < HITS; i++) t.equal((await a.token('alice')).body.data.cached, true)
  await new Promise((resolve) => setTimeout(resolve, 100))
  const scripts = sent.filter((c) => c === 'evalsha' || c === 'eval').length
  t.ok(sent.length <= HITS + 4, `${HITS} hits sent ${sent.length} commands (${scripts} scripts); without the read-along ${2 * HITS}; the quota ledger and each replica's overrides version may be read once a second`)
  t.equal(scripts, HITS, 'one script per hit')
  t.same(tokenReads, [], 'no GET of its own for the token')
  t.equal((await admin(b, 'DELETE', '/admin/tenants/acme/subjects/alice/tokens')).statusCode, 204, 'purged through the other replica')
  const next = await a.token('alice')
  t.equal(next.body.data.cached, false, 'the next request mints anew: the purged token is not read along')
  t.not(next.body.data.token, first.body.data.token)
})

// A Redis that refuses writes (OOM) is an outage (redis-connection.test.ts): every token written to it would be lost and
// every request for a key not in it a mint. Each replica mints a key at most once, then serves it from its own memory.
t.test('a Redis that refuses writes (OOM): each replica mints a key at most once, then answers it from its own memory', async (t) => {
  const server = await startRedisServer(t)
  const sim = await startSimulator({ apiKeys: [API_KEY], perMinute: 1000 })
  t.teardown(() => sim.close())
  const config = configFor(sim.url, [acme()], { redisUrl: server.url, logLevel: 'info' })
  const [a, b] = [await startReplica(t, config), await startReplica(t, config)]
  await a.token('alice')
  t.equal((await b.token('alice')).body.data.cached, true)
  const admin = new Redis(server.url)
  t.teardown(() => admin.disconnect())
  // Writes refused (the count's INCR too), reads answered.
  await admin.config('SET', 'maxmemory-policy', 'noeviction')
  await admin.config('SET', 'maxmemory', '1')
  const answers: Array<{ status: number; body: { data: { cached: boolean } } }> = []
  for (let i = 0; i < 4; i++) answers.push(await b.token('alice'), await a.token('alice'), await b.token('bob'))
  await admin.config('SET', 'maxmemory', '0')
  t.ok(answers.every((r) => r.status === 200), 'counted locally, answered')
  t.same(answers.slice(-3).map((r) => r.body.data.cached), [true, true, true], 'then each a hit, from local memory')
  t.ok(sim.stats.mints <= 1 + 3, `at most one mint per key and replica (${sim.stats.mints - 1} for 12 requests)`)
})
