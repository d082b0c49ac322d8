import t, { type Test } from 'tap'
import { createLogger } from '../../src/logger.js'
import { RedisConnection } from '../../src/state/redis-connection.js'
import { sharedRateLimitStore, type RateLimitStore } from '../../src/state/rate-limit-store.js'
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
