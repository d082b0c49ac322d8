import t from 'tap'
import { createLogger } from '../../src/logger.js'
import { RedisConnection } from '../../src/state/redis-connection.js'
import { overrideMacKey, RedisOverrideStore } from '../../src/state/redis-overrides.js'

const KEY = overrideMacKey({ cacheEncryptionKey: undefined, apiKey: 'tt-live-api-key-1234567890' })
import { redisForTest, TEST_REDIS_URL } from '../helpers/redis.js'

t.test('replicas share patches; every save gives a new version', async (t) => {
  const { prefix } = await redisForTest(t)
  const connection = await RedisConnection.open(TEST_REDIS_URL, createLogger('silent'))
  t.teardown(() => connection.close())
  const a = new RedisOverrideStore(connection.client, connection, prefix, KEY)
  const b = new RedisOverrideStore(connection.client, connection, prefix, KEY)
  t.equal(await b.version(), '0', 'nothing saved yet')
  t.same((await b.load()).patches, new Map())
  const v1 = await a.save('acme', { limits: { perSubjectPerMinute: 5 } }, '0')
  t.not(v1, null)
  t.equal(await b.version(), v1)
  t.same(await b.load(), { patches: new Map([['acme', { limits: { perSubjectPerMinute: 5 } }]]), rejected: [] })
  t.equal(await b.save('acme', { enabled: true }, '0'), null, 'a save based on an old version is refused')
  const v2 = await a.save('acme', { enabled: false }, v1 as string)
  t.not(v2, v1)
  t.equal(await b.version(), v2)
  t.same((await b.load()).patches.get('acme'), { enabled: false }, 'the refused save changed nothing')
})

t.test('while Redis is away: the last version (a quiet poll), and a save is a 503', async (t) => {
  const { prefix } = await redisForTest(t)
  const connection = await RedisConnection.open(TEST_REDIS_URL, createLogger('silent'))
  t.teardown(() => connection.close())
  const health = { available: true, noteFailure() {}, onRecover() {} }
  const store = new RedisOverrideStore(connection.client, health, prefix, KEY)
  await store.save('acme', { enabled: false }, '0')
  const seen = await store.version()
  health.available = false
  t.equal(await store.version(), seen)
  await t.rejects(store.save('acme', { enabled: true }, seen), { code: 'UPSTREAM_UNAVAILABLE', statusCode: 503 })
  health.available = true
  await connection.close()
  t.equal(await store.version(), seen, 'a failing read also answers the last version')
  await t.rejects(store.save('acme', { enabled: true }, seen), { code: 'UPSTREAM_UNAVAILABLE', statusCode: 503 })
})
