import t from 'tap'
import { MemoryCounters, mergeQuota } from '../../src/counters/memory-counters.js'
import { UpstreamQuota } from '../../src/upstream/quota.js'
import { readQuotaHeaders } from '../../src/upstream/rate-limit-headers.js'

t.test('X-RateLimit-* headers are read; a small Reset is a delay, not a time', async (t) => {
  const now = 1_800_000_000_000
  t.same(readQuotaHeaders({ 'x-ratelimit-limit': '60', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '1800000060' }, now), {
    limit: 60,
    remaining: 0,
    reset: 1_800_000_060,
  })
  t.same(readQuotaHeaders({ 'x-ratelimit-limit': '60', 'x-ratelimit-remaining': '5', 'x-ratelimit-reset': '30' }, now)?.reset, 1_800_000_030)
  t.equal(readQuotaHeaders({ 'x-ratelimit-limit': '60' }, now), undefined)
  t.equal(readQuotaHeaders({ 'x-ratelimit-limit': 'x', 'x-ratelimit-remaining': '1', 'x-ratelimit-reset': '1' }, now), undefined)
})

t.test('a block is never shortened within one upstream window', async (t) => {
  const blocked = { limit: 60, remaining: 0, reset: 100, blockedUntil: 100_000 }
  t.equal(mergeQuota(blocked, { limit: 60, remaining: 3, reset: 100, blockedUntil: 0 }).blockedUntil, 100_000)
  t.equal(mergeQuota(blocked, { limit: 60, remaining: 59, reset: 160, blockedUntil: 0 }).blockedUntil, 0, 'a new window lifts it')
})

t.test('UpstreamQuota: Remaining 0 blocks until Reset; a 429 without headers blocks 60 s', async (t) => {
  let now = 1_000_000
  const quota = new UpstreamQuota(new MemoryCounters(() => now), () => now)
  await quota.assertAvailable()
  await quota.observe({ limit: 10, remaining: 0, reset: 1030 })
  await t.rejects(quota.assertAvailable(), { code: 'UPSTREAM_RATE_LIMITED', headers: { 'retry-after': 30, 'x-ratelimit-remaining': 0 } })
  now = 1_030_000
  await quota.assertAvailable()
  const wait = await quota.observeRejection(undefined, undefined)
  t.equal(wait, 60_000)
  await t.rejects(quota.assertAvailable(), { code: 'UPSTREAM_RATE_LIMITED', headers: { 'retry-after': 60 } })
  t.same(quota.headers(), { 'x-ratelimit-limit': 10, 'x-ratelimit-remaining': 0, 'x-ratelimit-reset': 1090 })
})
