import t from 'tap'
import { call, mint, startSim } from './fixtures/simulator.js'

t.test('POST /__sim/faults switches faults for the next mint', async (t) => {
  const sim = await startSim(t)
  const res = await call(sim, 'POST', '/__sim/faults', { mode: 'error500' })
  t.equal(res.status, 204)
  t.equal((await mint(sim, 'k', {})).status, 500)

  t.equal((await call(sim, 'POST', '/__sim/faults', { latencyMs: 5 })).status, 204)
  t.same((await call(sim, 'GET', '/__sim/faults')).json, { mode: 'error500', latencyMs: 5 }, 'partial: mode kept')
})

t.test('POST /__sim/faults rejects what it does not understand', async (t) => {
  const sim = await startSim(t)
  for (const body of [{ mode: 'explode' }, { latencyMs: -1 }, { latencyMs: 'slow' }, { other: 1 }, '{nope']) {
    const res = await call(sim, 'POST', '/__sim/faults', body)
    t.equal(res.status, 400, JSON.stringify(body))
    t.equal(res.json.status_code, 400)
  }
  t.same((await call(sim, 'GET', '/__sim/faults')).json, { mode: 'ok', latencyMs: 0 }, 'faults unchanged')
})

t.test('GET /__sim/stats reports the counters', async (t) => {
  const sim = await startSim(t, { perMinute: 1 })
  await mint(sim, 'k', {})
  await mint(sim, 'k', {})
  await mint(sim, undefined, {})
  const res = await call(sim, 'GET', '/__sim/stats')
  t.equal(res.status, 200)
  t.same(res.json, { requests: 3, mints: 1, rateLimited: 1, failures: 1, sockets: 0 })
})

t.test('POST /__sim/reset resets quota, stats and faults', async (t) => {
  const sim = await startSim(t, { perMinute: 1 })
  await mint(sim, 'k', {})
  await call(sim, 'POST', '/__sim/faults', { mode: 'hang', latencyMs: 10 })
  t.equal((await call(sim, 'POST', '/__sim/reset')).status, 204)
  t.same((await call(sim, 'GET', '/__sim/faults')).json, { mode: 'ok', latencyMs: 0 })
  t.same({ ...sim.stats }, { requests: 0, mints: 0, rateLimited: 0, failures: 0, sockets: 0 })
  t.equal((await mint(sim, 'k', {})).status, 200, 'the quota is fresh')
})

t.test('control: false hides the control endpoints', async (t) => {
  const sim = await startSim(t, { control: false })
  t.equal((await call(sim, 'GET', '/__sim/stats')).status, 404)
  t.equal((await call(sim, 'POST', '/__sim/faults', { mode: 'error500' })).status, 404)
  t.equal((await mint(sim, 'k', {})).status, 200)
})
