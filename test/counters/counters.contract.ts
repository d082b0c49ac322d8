import { setTimeout as sleep } from 'node:timers/promises'
import type { Test } from 'tap'
import type { Counters, QuotaState } from '../../src/counters/counters.js'

const quota = (q: Partial<QuotaState>): QuotaState => ({ limit: 60, remaining: 10, reset: 1_764_100_000, blockedUntil: 0, ...q })

/** The behaviour every {@link Counters} shares; each implementation's test file runs it with a fresh instance. */
export function countersContract(t: Test, name: string, make: (t: Test) => Promise<Counters>): void {
  t.test(`${name}: Counters contract`, async (t) => {
    t.test('increment counts hits in a fixed window; keys are independent', async (t) => {
      const c = await make(t)
      const first = await c.increment('mints:acme', 60_000)
      t.equal(first.count, 1)
      t.ok(first.resetInMs > 59_000 && first.resetInMs <= 60_000, 'the first hit starts the window')
      t.equal((await c.increment('mints:acme', 60_000)).count, 2)
      t.equal((await c.increment('mints:other', 60_000)).count, 1)
      const third = await c.increment('mints:acme', 60_000)
      t.equal(third.count, 3)
      t.ok(third.resetInMs <= first.resetInMs, 'later hits do not extend the window')
    })

    t.test('a window ends after its length and the count starts again', async (t) => {
      const c = await make(t)
      await c.increment('w', 60)
      await c.increment('w', 60)
      await sleep(100)
      t.equal((await c.increment('w', 60)).count, 1)
    })

    t.test('peek reads a window without adding to it; an unknown window is 0', async (t) => {
      const c = await make(t)
      t.same(await c.peek('nothing'), { count: 0, resetInMs: 0 })
      await c.increment('p', 60_000)
      const peeked = await c.peek('p')
      t.equal(peeked.count, 1)
      t.ok(peeked.resetInMs > 0)
      t.equal((await c.peek('p')).count, 1)
    })

    t.test('quota: none at first; an observation is read back, nulls included', async (t) => {
      const c = await make(t)
      t.equal(await c.readQuota(), undefined)
      await c.writeQuota(quota({}))
      t.same(await c.readQuota(), quota({}))
      const unknown = { limit: null, remaining: null, reset: null, blockedUntil: 1_764_100_000_123 }
      await c.writeQuota(unknown)
      t.same(await c.readQuota(), unknown)
    })

    t.test('quota: within one upstream window a block never moves back; a new window replaces it', async (t) => {
      const c = await make(t)
      await c.writeQuota(quota({ remaining: 0, blockedUntil: 1_764_100_000_500 }))
      await c.writeQuota(quota({ remaining: 5, blockedUntil: 0 }))
      t.same(await c.readQuota(), quota({ remaining: 5, blockedUntil: 1_764_100_000_500 }), 'same reset: the later block kept')
      await c.writeQuota(quota({ remaining: 59, reset: 1_764_100_060, blockedUntil: 0 }))
      t.same(await c.readQuota(), quota({ remaining: 59, reset: 1_764_100_060, blockedUntil: 0 }), 'new reset: replaced')
      await c.writeQuota(quota({ reset: null, blockedUntil: 0 }))
      t.equal((await c.readQuota())?.blockedUntil, 0, 'an unknown reset is never the same window')
    })

    t.test('close may be called twice', async (t) => {
      const c = await make(t)
      await c.close()
      await c.close()
      t.pass()
    })
  })
}
