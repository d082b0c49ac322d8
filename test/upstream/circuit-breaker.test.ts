import t from 'tap'
import { CircuitBreaker } from '../../src/upstream/circuit-breaker.js'

t.test('opens after the threshold, lets one trial through after openMs, closes on success', async (t) => {
  let now = 0
  const b = new CircuitBreaker({ threshold: 3, openMs: 10_000, now: () => now })
  for (let i = 0; i < 2; i++) b.failure()
  t.equal(b.blockedForMs(), 0, 'still closed below the threshold')
  b.failure()
  t.equal(b.state, 'open')
  t.equal(b.blockedForMs(), 10_000)
  now = 10_000
  t.equal(b.state, 'half-open')
  t.equal(b.blockedForMs(), 0, 'one trial call')
  t.ok(b.blockedForMs() > 0, 'a second caller waits while the trial runs')
  b.failure()
  t.equal(b.blockedForMs(), 10_000, 'a failed trial opens it again')
  now = 20_000
  t.equal(b.blockedForMs(), 0)
  b.success()
  t.equal(b.state, 'closed')
  t.equal(b.blockedForMs(), 0)
})
