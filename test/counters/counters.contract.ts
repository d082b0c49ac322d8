import { setTimeout as sleep } from 'node:timers/promises'
import type { Test } from 'tap'
import type { Counters } from '../../src/counters/counters.js'

/** A max no test reaches: a take that is always counted. */
const UNLIMITED = Number.MAX_SAFE_INTEGER


/** The behaviour every {@link Counters} shares; each implementation's test file runs it with a fresh instance. */
export function countersContract(t: Test, name: string, make: (t: Test) => Promise<Counters>): void {
  t.test(`${name}: Counters contract`, async (t) => {
    t.test('take counts hits in a fixed window; keys are independent', async (t) => {
      const c = await make(t)
      const first = await c.take('mints:acme', 60_000, UNLIMITED)
      t.equal(first.count, 1)
      t.ok(first.resetInMs > 59_000 && first.resetInMs <= 60_000, 'the first hit starts the window')
      t.equal((await c.take('mints:acme', 60_000, UNLIMITED)).count, 2)
      t.equal((await c.take('mints:other', 60_000, UNLIMITED)).count, 1)
      const third = await c.take('mints:acme', 60_000, UNLIMITED)
      t.equal(third.count, 3)
      t.ok(third.resetInMs <= first.resetInMs, 'later hits do not extend the window')
    })

    t.test('a window ends after its length and the count starts again', async (t) => {
      const c = await make(t)
      await c.take('w', 60, UNLIMITED)
      await c.take('w', 60, UNLIMITED)
      await sleep(100)
      t.equal((await c.take('w', 60, UNLIMITED)).count, 1)
    })

    t.test('peek reads a window without adding to it; an unknown window is 0', async (t) => {
      const c = await make(t)
      t.same(await c.peek('nothing'), { count: 0, resetInMs: 0 })
      await c.take('p', 60_000, UNLIMITED)
      const peeked = await c.peek('p')
      t.equal(peeked.count, 1)
      t.ok(peeked.resetInMs > 0)
      t.equal((await c.peek('p')).count, 1)
    })


    t.test('take counts only while the window is under max; a refused take is not counted', async (t) => {
      const c = await make(t)
      const first = await c.take('share', 60_000, 2)
      t.same({ count: first.count, taken: first.taken }, { count: 1, taken: true })
      t.ok(first.resetInMs > 59_000 && first.resetInMs <= 60_000, 'the first take starts the window')
      t.match(await c.take('share', 60_000, 2), { count: 2, taken: true })
      for (let i = 0; i < 3; i++) t.match(await c.take('share', 60_000, 2), { count: 2, taken: false }, 'refused, not counted')
      t.equal((await c.peek('share')).count, 2, 'the window holds the takes let through')
      t.match(await c.take('share', 60_000, 4), { count: 3, taken: true }, 'a higher max lets more through at once')
      t.match(await c.take('other', 60_000, 0), { count: 0, taken: false }, 'max 0 lets nothing through')
    })

    t.test('concurrent takes: exactly max of them are counted', async (t) => {
      const c = await make(t)
      const answers = await Promise.all(Array.from({ length: 20 }, () => c.take('burst', 60_000, 7)))
      t.equal(answers.filter((a) => a.taken).length, 7)
      t.equal((await c.peek('burst')).count, 7)
    })

    t.test('a refused take does not keep a window from ending', async (t) => {
      const c = await make(t)
      await c.take('short', 60, 1)
      t.match(await c.take('short', 60, 1), { taken: false })
      await sleep(100)
      t.match(await c.take('short', 60, 1), { count: 1, taken: true })
    })

    t.test('close may be called twice', async (t) => {
      const c = await make(t)
      await c.close()
      await c.close()
      t.pass()
    })
  })
}
