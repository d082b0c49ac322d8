import t from 'tap'
import { T0, call, fakeClock, mint, settlesWithin, startSim } from './fixtures/simulator.js'

t.test('error500', async (t) => {
  const sim = await startSim(t)
  sim.setFaults({ mode: 'error500' })
  const res = await mint(sim, 'k', {})
  t.equal(res.status, 500)
  t.same(res.json, { status_code: 500, message: 'Internal error' })
  t.same({ ...sim.stats }, { requests: 1, mints: 0, rateLimited: 0, failures: 1, sockets: 0 })
})

t.test('error400', async (t) => {
  const sim = await startSim(t)
  sim.setFaults({ mode: 'error400' })
  const res = await mint(sim, 'k', {})
  t.equal(res.status, 400)
  t.equal(res.json.status_code, 400)
  t.type(res.json.message, 'string')
  t.equal(res.headers['x-ratelimit-remaining'], '60', 'a known key still gets its quota headers')
})

t.test('malformed answers 200 with a body that is not JSON', async (t) => {
  const sim = await startSim(t)
  sim.setFaults({ mode: 'malformed' })
  const res = await mint(sim, 'k', {})
  t.equal(res.status, 200)
  t.equal(res.text, '<html>oops')
  t.match(res.headers['content-type'], /^text\/html/)
})

t.test('no-token answers 200 without a token', async (t) => {
  const sim = await startSim(t)
  sim.setFaults({ mode: 'no-token' })
  const res = await mint(sim, 'k', {})
  t.equal(res.status, 200)
  t.same(res.json, { status_code: 0, data: {} })
})

t.test('rate-limited answers 429 with Remaining 0 and a reset a minute ahead', async (t) => {
  const clock = fakeClock()
  const sim = await startSim(t, { perMinute: 30, now: clock.now })
  sim.setFaults({ mode: 'rate-limited' })
  const res = await mint(sim, 'k', {})
  t.equal(res.status, 429)
  t.same(res.json, { status_code: 429, message: 'Rate limit exceeded' })
  t.equal(res.headers['x-ratelimit-limit'], '30')
  t.equal(res.headers['x-ratelimit-remaining'], '0')
  t.equal(res.headers['x-ratelimit-reset'], String(T0 / 1000 + 60))
  t.equal(res.headers['retry-after'], '60')
  t.equal(sim.stats.rateLimited, 1)
})

t.test('faults spend no quota, and ok restores normal answers', async (t) => {
  const sim = await startSim(t, { perMinute: 5 })
  sim.setFaults({ mode: 'error500' })
  await mint(sim, 'k', {})
  sim.setFaults({ mode: 'ok' })
  const res = await mint(sim, 'k', {})
  t.equal(res.status, 200)
  t.equal(res.headers['x-ratelimit-remaining'], '4')
  t.equal(sim.stats.requests, 2)
})

t.test('latencyMs delays the answer', async (t) => {
  const sim = await startSim(t)
  sim.setFaults({ latencyMs: 150 })
  const started = performance.now()
  const res = await mint(sim, 'k', {})
  t.equal(res.status, 200)
  t.ok(performance.now() - started >= 140, 'answered after the latency')
})

t.test('setFaults merges and validates', async (t) => {
  const sim = await startSim(t)
  sim.setFaults({ mode: 'no-token' })
  sim.setFaults({ latencyMs: 1 })
  t.same((await call(sim, 'GET', '/__sim/faults')).json, { mode: 'no-token', latencyMs: 1 })
  t.throws(() => sim.setFaults({ mode: 'boom' as never }), TypeError)
  t.throws(() => sim.setFaults({ latencyMs: -1 }), TypeError)
})

t.test('hang never answers, and close() ends the request', async (t) => {
  const sim = await startSim(t)
  sim.setFaults({ mode: 'hang' })
  const pending = mint(sim, 'k', {})
  t.equal(await settlesWithin(pending, 150), 'pending', 'no answer after 150 ms')
  t.equal(sim.stats.requests, 1)

  const started = performance.now()
  await sim.close()
  t.ok(performance.now() - started < 1000, 'close() is prompt')
  await t.rejects(pending, 'the hanging request fails once the simulator closes')
})

t.test('close() also ends a request waiting out its latency', async (t) => {
  const sim = await startSim(t)
  sim.setFaults({ latencyMs: 60_000 })
  const pending = mint(sim, 'k', {})
  t.equal(await settlesWithin(pending, 100), 'pending')
  await sim.close()
  await t.rejects(pending)
})
