import type { Test } from 'tap'
import { answerState, EMPTY_LEDGER } from '../../src/upstream/ledger.js'
import type { QuotaLedger } from '../../src/upstream/quota-ledger.js'

const NOW = 1_800_000_000_000
const S = NOW / 1000
const window = (remaining: number, reset = S + 60) =>
  answerState({ kind: 'ok', sentAt: NOW, receivedAt: NOW + 10, quota: { limit: 10, remaining, reset } })

/**
 * The behaviour every {@link QuotaLedger} shares; each implementation's test
 * file runs it with a factory giving a fresh, empty ledger.
 */
export function quotaLedgerContract(t: Test, name: string, make: (t: Test) => Promise<QuotaLedger>): void {
  t.test(`${name}: QuotaLedger contract`, async (t) => {
    t.test('an empty ledger admits; its state is empty', async (t) => {
      const ledger = await make(t)
      t.same(await ledger.read(NOW), EMPTY_LEDGER)
      const r = await ledger.reserve(NOW, 5000)
      t.match(r, { admission: { ok: true }, reservation: { id: String } })
    })

    t.test('with n left, n reservations and no more; recording one frees its place', async (t) => {
      const ledger = await make(t)
      await ledger.record(undefined, window(2), NOW)
      const a = await ledger.reserve(NOW + 20, 5000)
      const b = await ledger.reserve(NOW + 20, 5000)
      const c = await ledger.reserve(NOW + 20, 5000)
      t.ok(a.admission.ok && b.admission.ok)
      t.match(c, { admission: { ok: false, reason: 'spent' } })
      t.equal(c.reservation, undefined)
      await ledger.record(a.reservation, window(2), NOW + 30)
      t.match(await ledger.reserve(NOW + 40, 5000), { admission: { ok: true } }, 'a place again')
    })

    t.test('a reservation never recorded lapses after its ttl', async (t) => {
      const ledger = await make(t)
      await ledger.record(undefined, window(1), NOW)
      t.match(await ledger.reserve(NOW, 1000), { admission: { ok: true } })
      t.match(await ledger.reserve(NOW + 500, 1000), { admission: { ok: false } })
      t.match(await ledger.reserve(NOW + 1001, 1000), { admission: { ok: true } }, 'the lapsed one no longer counts')
    })

    t.test('a block refuses with its time left; an older answer cannot end it', async (t) => {
      const ledger = await make(t)
      await ledger.record(undefined, answerState({ kind: 'rate_limited', sentAt: NOW, receivedAt: NOW + 100 }), NOW + 100)
      const refused = await ledger.reserve(NOW + 1100, 5000)
      t.match(refused, { admission: { ok: false, reason: 'blocked', retryAfterMs: 59_000 } })
      await ledger.record(undefined, window(5), NOW + 1200)
      t.match(await ledger.reserve(NOW + 1300, 5000), { admission: { ok: false, reason: 'blocked' } })
    })

    t.test('`known` is joined in first: a block learnt elsewhere holds here', async (t) => {
      const ledger = await make(t)
      await ledger.record(undefined, window(5), NOW)
      const block = answerState({ kind: 'rate_limited', sentAt: NOW + 50, receivedAt: NOW + 100 })
      t.match(await ledger.reserve(NOW + 200, 5000, block), { admission: { ok: false, reason: 'blocked' } })
      t.equal((await ledger.read(NOW + 300)).blockedUntil, block.blockedUntil, 'and stays')
    })

    t.test('Remaining never goes back up within a window', async (t) => {
      const ledger = await make(t)
      await ledger.record(undefined, window(3), NOW)
      await ledger.record(undefined, window(7), NOW)
      t.equal((await ledger.read(NOW)).remaining, 3)
      await ledger.record(undefined, window(9, S + 120), NOW)
      t.same([(await ledger.read(NOW)).remaining, (await ledger.read(NOW)).reset], [9, S + 120], 'a newer window replaces it')
    })
  })
}
