import t from 'tap'
import { CircuitBreaker } from '../../src/upstream/circuit-breaker.js'

t.test('opens after the threshold, lets one trial through after openMs, closes on success', async (t) => {
  let now = 0
  const b = new CircuitBreaker({ threshold: 3, openMs: 10_000, now: () => now })
  for (let i = 0; i < 2; i++) b.failure()
  t.equal(b.tryAcquire(), 0, 'still closed below the threshold')
  b.failure()
  t.equal(b.state, 'open')
  t.equal(b.tryAcquire(), 10_000)
  now = 10_000
  t.equal(b.state, 'half-open')
  t.equal(b.tryAcquire(), 0, 'one trial call')
  t.ok(b.tryAcquire() > 0, 'a second caller waits while the trial runs')
  b.failure()
  t.equal(b.tryAcquire(), 10_000, 'a failed trial opens it again')
  now = 20_000
  t.equal(b.tryAcquire(), 0)
  b.success()
  t.equal(b.state, 'closed')
  t.equal(b.tryAcquire(), 0)
})

t.test('a trial that never reports back expires, so the circuit cannot stick half-open', async (t) => {
  let now = 0
  const b = new CircuitBreaker({ threshold: 1, openMs: 1000, now: () => now })
  b.failure()
  now = 1000
  t.equal(b.tryAcquire(), 0, 'the trial')
  t.ok(b.tryAcquire() > 0)
  now = 2000
  t.equal(b.tryAcquire(), 0, 'a new trial once the old one is stale')
})
