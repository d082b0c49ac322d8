import t from 'tap'
import { answerState } from '../../src/upstream/ledger.js'
import { RedisLedger } from '../../src/upstream/redis-ledger.js'
import { redisForTest, scanKeys } from '../helpers/redis.js'
import { quotaLedgerContract } from './quota-ledger.contract.js'

quotaLedgerContract(t, 'RedisLedger', async (t) => {
  const { redis, prefix } = await redisForTest(t)
  return new RedisLedger({ redis, prefix, keyId: 'k' })
})

t.test('two replicas share one ledger: reservations count across them; keys share one slot and expire', async (t) => {
  const { redis, prefix } = await redisForTest(t)
  const a = new RedisLedger({ redis, prefix, keyId: 'k' })
  const b = new RedisLedger({ redis, prefix, keyId: 'k' })
  const other = new RedisLedger({ redis, prefix, keyId: 'another-api-key' })
  const now = Date.now()
  await a.record(undefined, answerState({ kind: 'ok', sentAt: now, receivedAt: now, quota: { limit: 10, remaining: 1, reset: Math.ceil(now / 1000) + 60 } }), now)
  t.match(await a.reserve(now, 5000), { admission: { ok: true } })
  t.match(await b.reserve(now, 5000), { admission: { ok: false, reason: 'spent' } }, 'b sees the reservation a holds')
  t.match(await other.reserve(now, 5000), { admission: { ok: true } }, 'another API key has its own ledger')
  const keys = (await scanKeys(redis, prefix)).sort()
  t.same(keys, [`${prefix}{quota:another-api-key}`, `${prefix}{quota:another-api-key}:flight`, `${prefix}{quota:k}`, `${prefix}{quota:k}:flight`])
  for (const k of keys) t.ok((await redis.pttl(k)) > 0, `${k} expires`)
})
