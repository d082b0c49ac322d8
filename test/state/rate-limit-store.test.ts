import t, { type Test } from 'tap'
import { createLogger } from '../../src/logger.js'
import { RedisConnection } from '../../src/state/redis-connection.js'
import { LocalRateLimitStore, sharedRateLimitStore, type RateLimitStore, type WindowPair } from '../../src/state/rate-limit-store.js'
import { freePort, redisForTest, scanKeys, TEST_REDIS_URL } from '../helpers/redis.js'

const log = createLogger('silent')

/** One replica's limiter, as @fastify/rate-limit builds it: the class with the plugin's params, then a child. */
async function replica(t: Test, prefix: string, url = TEST_REDIS_URL): Promise<{ limiter: RateLimitStore; connection: RedisConnection }> {
  const connection = await RedisConnection.open(url, log, { connectTimeoutMs: 500 })
  t.teardown(() => connection.close())
  const Store = sharedRateLimitStore(connection.client, connection, `${prefix}rl:`)
  return { limiter: new Store({}).child({ routeInfo: {} }), connection }
}

const incr = (store: RateLimitStore, key: string, method: 'incr' | 'read' = 'incr') =>
  new Promise<{ current: number; ttl: number }>((resolve, reject) =>
    store[method](key, (err, res) => (err ? reject(err) : resolve(res as { current: number; ttl: number })), 60_000, 10),
  )

t.test('replicas count into one Redis window, under tkb:rl: with the tenant as hash tag', async (t) => {
  const { redis, prefix } = await redisForTest(t)
  const a = await replica(t, prefix)
  const b = await replica(t, prefix)
  t.equal((await incr(a.limiter, 's:{acme}:h1')).current, 1)
  t.equal((await incr(b.limiter, 's:{acme}:h1')).current, 2)
  t.equal((await incr(a.limiter, 's:{acme}:h1', 'read')).current, 2, 'read does not count')
  const ttl = (await incr(b.limiter, 's:{acme}:h1')).ttl
  t.ok(ttl > 0 && ttl <= 60_000)
  t.same(await scanKeys(redis, prefix), [`${prefix}rl:s:{acme}:h1`])
})

t.test('a route limiter gets the route in its keys', async (t) => {
  const { redis, prefix } = await redisForTest(t)
  const { connection } = await replica(t, prefix)
  const Store = sharedRateLimitStore(connection.client, connection, `${prefix}rl:`)
  const route = new Store({}).child({ routeInfo: { method: 'POST', url: '/v1/token' } })
  await incr(route, 't:{acme}')
  t.same(await scanKeys(redis, prefix), [`${prefix}rl:POST/v1/token:t:{acme}`])
})

t.test('without Redis the limit is counted locally, never skipped', async (t) => {
  const { limiter, connection } = await replica(t, 'unused:', `redis://127.0.0.1:${await freePort()}`)
  t.equal(connection.available, false)
  const counts = []
  for (let i = 0; i < 12; i++) counts.push((await incr(limiter, 's:{acme}:h1')).current)
  t.same(counts, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
})

t.test('a Redis command that fails falls back to the local count for that call', async (t) => {
  const { prefix } = await redisForTest(t)
  const { limiter, connection } = await replica(t, prefix)
  t.equal((await incr(limiter, 's:{acme}:x')).current, 1)
  const health = { available: true, failures: 0, noteFailure() { this.failures++ }, onRecover() {} }
  const Store = sharedRateLimitStore(connection.client, health, `${prefix}rl:`)
  const limiterOnBrokenRedis = new Store({}).child({ routeInfo: {} })
  await connection.close()
  t.equal((await incr(limiterOnBrokenRedis, 's:{acme}:x')).current, 1, 'local count, no error')
  t.equal(health.failures, 1)
})

const both = async (store: RateLimitStore, subjectKey: string, subjectMax: number, tenantKey = 't:{acme}'): Promise<WindowPair> =>
  store.hitBoth(subjectKey, tenantKey, 60_000, subjectMax)

t.test('hitBoth counts both windows in one Redis round trip, under the keys two plugin calls use', async (t) => {
  const { redis, prefix } = await redisForTest(t)
  const a = await replica(t, prefix)
  const b = await replica(t, prefix)
  await both(a.limiter, 's:{acme}:warm', 10) // loads the script once
  let sent = 0
  const client = a.connection.client as unknown as { sendCommand(cmd: unknown): unknown }
  const send = client.sendCommand.bind(client)
  client.sendCommand = (cmd) => (sent++, send(cmd))
  const first = await both(a.limiter, 's:{acme}:h1', 10)
  t.equal(sent, 1, 'one command: both windows in one script')
  t.match(first, { subject: { current: 1, ttl: 60_000 }, tenant: { current: 2 } })
  t.match(await both(b.limiter, 's:{acme}:h1', 10), { subject: { current: 2 }, tenant: { current: 3 } }, 'replicas share both windows')
  t.equal((await incr(a.limiter, 's:{acme}:h1')).current, 3, 'the plugin’s own step sees the same subject window')
  t.equal((await incr(a.limiter, 't:{acme}', 'read')).current, 3, 'and the same tenant window')
  const tenantTtl = (await both(a.limiter, 's:{acme}:h2', 10)).tenant?.ttl ?? 0
  t.ok(tenantTtl > 0 && tenantTtl <= 60_000)
  t.same((await scanKeys(redis, prefix)).sort(), [`${prefix}rl:s:{acme}:h1`, `${prefix}rl:s:{acme}:h2`, `${prefix}rl:s:{acme}:warm`, `${prefix}rl:t:{acme}`])
})

t.test('hitBoth leaves the tenant window alone once the subject is over its limit', async (t) => {
  const { prefix } = await redisForTest(t)
  const { limiter } = await replica(t, prefix)
  await both(limiter, 's:{acme}:h1', 1)
  const over = await both(limiter, 's:{acme}:h1', 1)
  t.same(over.subject.current, 2)
  t.equal(over.tenant, undefined, 'no tenant count for a refused subject')
  t.equal((await incr(limiter, 't:{acme}', 'read')).current, 1)
})

t.test('hitBoth reads a key along in the same script: its value, null when absent, nothing once the subject is over', async (t) => {
  const { redis, prefix } = await redisForTest(t)
  const { limiter, connection } = await replica(t, prefix)
  t.equal(limiter.readsAlong, true, 'one Redis: a key can be read along')
  await redis.set(`${prefix}along`, 'sealed-value', 'PX', 10_000)
  await limiter.hitBoth('s:{acme}:warm', 't:{acme}', 60_000, 10, `${prefix}along`) // loads the script once
  let sent = 0
  const client = connection.client as unknown as { sendCommand(cmd: unknown): unknown }
  const send = client.sendCommand.bind(client)
  client.sendCommand = (cmd) => (sent++, send(cmd))
  t.match(await limiter.hitBoth('s:{acme}:r1', 't:{acme}', 60_000, 1, `${prefix}along`), { subject: { current: 1 }, tenant: { current: 2 }, read: 'sealed-value' })
  t.equal(sent, 1, 'both windows and the read: one command')
  t.match(await limiter.hitBoth('s:{acme}:r2', 't:{acme}', 60_000, 1, `${prefix}nothing-here`), { subject: { current: 1 }, read: null })
  const over = await limiter.hitBoth('s:{acme}:r1', 't:{acme}', 60_000, 1, `${prefix}along`)
  t.same(over, { subject: { current: 2, ttl: over.subject.ttl } }, 'over its limit: no tenant count, nothing read')
  t.equal((await limiter.hitBoth('s:{acme}:r3', 't:{acme}', 60_000, 1)).read, undefined, 'no key asked, nothing read')
  t.notOk((new LocalRateLimitStore() as RateLimitStore).readsAlong, 'a store in this process reads nothing along')

  // With a fourth key, the quota ledger's hash: its window fields, in the same command.
  await redis.hset(`${prefix}{quota:q}`, { limit: '60', remaining: '7', reset: '1800000000', blockedUntil: '0' })
  sent = 0
  t.match(await limiter.hitBoth('s:{acme}:r4', 't:{acme}', 60_000, 10, `${prefix}along`, `${prefix}{quota:q}`), {
    read: 'sealed-value',
    quota: ['60', '7', '1800000000'],
  })
  t.equal(sent, 1, 'the windows, the token and the quota: one command')
  t.same((await limiter.hitBoth('s:{acme}:r5', 't:{acme}', 60_000, 10, `${prefix}along`, `${prefix}{quota:none}`)).quota, [null, null, null], 'no ledger yet: nulls')
  t.equal((await limiter.hitBoth('s:{acme}:r6', 't:{acme}', 60_000, 10, `${prefix}along`)).quota, undefined, 'not asked, not read')
})

t.test('hitBoth counts locally, with the same rules, while Redis is away or failing', async (t) => {
  const { limiter } = await replica(t, 'unused:', `redis://127.0.0.1:${await freePort()}`)
  t.match(await both(limiter, 's:{acme}:h1', 1), { subject: { current: 1, ttl: 60_000 }, tenant: { current: 1 } })
  t.match(await both(limiter, 's:{acme}:h1', 1), { subject: { current: 2 }, tenant: undefined })
  t.match(await both(limiter, 's:{acme}:h2', 1), { subject: { current: 1 }, tenant: { current: 2 } })

  const { prefix } = await redisForTest(t)
  const { connection } = await replica(t, prefix)
  const health = { available: true, failures: 0, noteFailure() { this.failures++ }, onRecover() {} }
  const Store = sharedRateLimitStore(connection.client, health, `${prefix}rl:`)
  const onBrokenRedis = new Store({}).child({ routeInfo: {} })
  await connection.close()
  t.match(await both(onBrokenRedis, 's:{acme}:x', 5), { subject: { current: 1 }, tenant: { current: 1 } }, 'local count, no error')
  t.equal(health.failures, 1)
})

t.test('the local store counts both windows the same way', async (t) => {
  const store = new LocalRateLimitStore()
  t.match(await both(store, 's:{acme}:h1', 1), { subject: { current: 1, ttl: 60_000 }, tenant: { current: 1, ttl: 60_000 } })
  t.match(await both(store, 's:{acme}:h1', 1), { subject: { current: 2 }, tenant: undefined })
  t.match(await both(store, 's:{acme}:h2', 1), { tenant: { current: 2 } })
  t.notOk(store.hitBoth('s:{acme}:h3', 't:{acme}', 60_000, 1) instanceof Promise, 'answered at once, without a promise')
  t.equal(store.child(), store)
})
