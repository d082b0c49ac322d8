import t from 'tap'
import { RedisCounters } from '../../src/counters/redis-counters.js'
import { redisForTest, scanKeys } from '../helpers/redis.js'
import { countersContract } from './counters.contract.js'

countersContract(t, 'RedisCounters', async (t) => {
  const { redis, prefix } = await redisForTest(t)
  return new RedisCounters({ redis, prefix })
})

t.test('two replicas count into the same window', async (t) => {
  const { redis, prefix } = await redisForTest(t)
  const a = new RedisCounters({ redis, prefix })
  const b = new RedisCounters({ redis, prefix })
  await a.increment('mints:acme', 60_000)
  t.equal((await b.increment('mints:acme', 60_000)).count, 2)
})

t.test('keys: one key per window, with an expiry', async (t) => {
  const { redis, prefix } = await redisForTest(t)
  const c = new RedisCounters({ redis, prefix })
  await c.increment('mints:acme', 60_000)
  const keys = (await scanKeys(redis, prefix)).sort()
  t.same(keys, [`${prefix}ctr:{mints:acme}`])
  for (const k of keys) t.ok((await redis.pttl(k)) > 0, `${k} expires`)
})
