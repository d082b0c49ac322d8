import t from 'tap'
import { T0, fakeClock, mint, startSim } from './fixtures/simulator.js'

const S0 = T0 / 1000

function quotaOf(res: { headers: Record<string, string | undefined> }): [number, number, number] {
  return [
    Number(res.headers['x-ratelimit-limit']),
    Number(res.headers['x-ratelimit-remaining']),
    Number(res.headers['x-ratelimit-reset']),
  ]
}

t.test('every successful mint reports the per-minute window', async (t) => {
  const clock = fakeClock()
  const sim = await startSim(t, { perMinute: 3, now: clock.now })
  t.same(quotaOf(await mint(sim, 'k', {})), [3, 2, S0 + 60])
  clock.advance(10_000)
  const second = await mint(sim, 'k', {})
  t.same(quotaOf(second), [3, 1, S0 + 60], 'the window is anchored at its first mint')
  t.notOk(second.headers['retry-after'], 'no Retry-After while within the quota')
})

t.test('per-minute exhaustion answers 429 until the window resets', async (t) => {
  const clock = fakeClock()
  const sim = await startSim(t, { perMinute: 3, now: clock.now })
  for (let i = 0; i < 3; i++) t.equal((await mint(sim, 'k', {})).status, 200)

  const limited = await mint(sim, 'k', {})
  t.equal(limited.status, 429)
  t.same(limited.json, { status_code: 429, message: 'Rate limit exceeded' })
  t.same(quotaOf(limited), [3, 0, S0 + 60])
  t.equal(limited.headers['retry-after'], '60')

  clock.advance(45_000)
  const later = await mint(sim, 'k', {})
  t.equal(later.status, 429)
  t.equal(later.headers['retry-after'], '15', 'Retry-After counts down to the reset')

  const badBody = await mint(sim, 'k', { expire_after: 'x' })
  t.equal(badBody.status, 429, 'the quota is checked before the body')

  clock.set(T0 + 60_000)
  const fresh = await mint(sim, 'k', {})
  t.equal(fresh.status, 200, 'a new window opens at the reset')
  t.same(quotaOf(fresh), [3, 2, S0 + 120])
  t.equal(sim.stats.mints, 4)
  t.equal(sim.stats.rateLimited, 3)
})

t.test('only successful mints count', async (t) => {
  const sim = await startSim(t, { perMinute: 2 })
  const bad = await mint(sim, 'k', { max_websockets: 0 })
  t.equal(bad.status, 400)
  t.equal(bad.headers['x-ratelimit-remaining'], '2')
  t.equal((await mint(sim, 'k', {})).headers['x-ratelimit-remaining'], '1')
})

t.test('the per-day window is reported when it is tighter or exhausted', async (t) => {
  const clock = fakeClock()
  const sim = await startSim(t, { perMinute: 3, perDay: 5, now: clock.now })
  for (let i = 0; i < 2; i++) await mint(sim, 'k', {})
  t.same(quotaOf(await mint(sim, 'k', {})), [3, 0, S0 + 60], 'minute exhausted: minute window')

  clock.advance(60_000)
  t.same(quotaOf(await mint(sim, 'k', {})), [5, 1, S0 + 86_400], 'day tighter than minute: day window')
  t.same(quotaOf(await mint(sim, 'k', {})), [5, 0, S0 + 86_400])

  const limited = await mint(sim, 'k', {})
  t.equal(limited.status, 429)
  t.same(quotaOf(limited), [5, 0, S0 + 86_400], 'the exhausted day window')
  t.equal(limited.headers['retry-after'], String(86_400 - 60))

  clock.advance(120_000)
  t.equal((await mint(sim, 'k', {})).status, 429, 'a new minute does not help')

  clock.set(T0 + 86_400_000)
  const nextDay = await mint(sim, 'k', {})
  t.equal(nextDay.status, 200)
  t.same(quotaOf(nextDay), [3, 2, S0 + 86_400 + 60])
})

t.test('keys have separate quotas, and resetQuota clears them', async (t) => {
  const sim = await startSim(t, { perMinute: 1 })
  t.equal((await mint(sim, 'a', {})).status, 200)
  t.equal((await mint(sim, 'a', {})).status, 429)
  t.equal((await mint(sim, 'b', {})).status, 200, 'key b has its own window')
  sim.resetQuota()
  t.equal((await mint(sim, 'a', {})).status, 200)
})
