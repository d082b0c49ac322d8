import t from 'tap'
import { RedisCounters } from '../../src/counters/redis-counters.js'
import { redisForTest, scanKeys } from '../helpers/redis.js'
import { countersContract } from './counters.contract.js'

/** A max no test reaches: a take that is always counted. */
const UNLIMITED = Number.MAX_SAFE_INTEGER

countersContract(t, 'RedisCounters', async (t) => {
  const { redis, prefix } = await redisForTest(t)
  return new RedisCounters({ redis, prefix })
})

t.test('two replicas count into the same window', async (t) => {
  const { redis, prefix } = await redisForTest(t)
  const a = new RedisCounters({ redis, prefix })
  const b = new RedisCounters({ redis, prefix })
  await a.take('mints:acme', 60_000, UNLIMITED)
  t.equal((await b.take('mints:acme', 60_000, UNLIMITED)).count, 2)
})

t.test('keys: one key per window, with an expiry', async (t) => {
  const { redis, prefix } = await redisForTest(t)
  const c = new RedisCounters({ redis, prefix })
  await c.take('mints:acme', 60_000, UNLIMITED)
  const keys = (await scanKeys(redis, prefix)).sort()
  t.same(keys, [`${prefix}ctr:{mints:acme}`])
  for (const k of keys) t.ok((await redis.pttl(k)) > 0, `${k} expires`)
})
