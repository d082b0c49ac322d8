import t from 'tap'
import {
  admit,
  answerState,
  blockInForce,
  DEFAULT_BLOCK_MS,
  EMPTY_LEDGER,
  joinLedger,
  MAX_BLOCK_MS,
  type LedgerAnswer,
  type LedgerState,
} from '../../src/upstream/ledger.js'
import { readQuotaHeaders, readRetryAfter } from '../../src/upstream/rate-limit-headers.js'

const NOW = 1_800_000_000_000
const S = NOW / 1000
const observe = (state: LedgerState, answer: LedgerAnswer): LedgerState => joinLedger(state, answerState(answer))
const ok = (sentAt: number, receivedAt: number, remaining: number, reset = S + 60): LedgerAnswer => ({
  kind: 'ok',
  sentAt,
  receivedAt,
  quota: { limit: 10, remaining, reset },
})

t.test('X-RateLimit-* headers: unix seconds as they are, milliseconds (>= 10^12) and delays turned into unix seconds', async (t) => {
  const h = (reset: string) => ({ 'x-ratelimit-limit': '60', 'x-ratelimit-remaining': '5', 'x-ratelimit-reset': reset })
  t.equal(readQuotaHeaders(h('1800000060'), NOW)?.reset, S + 60)
  t.equal(readQuotaHeaders(h('1800000060000'), NOW)?.reset, S + 60, 'milliseconds')
  t.equal(readQuotaHeaders(h('1800000059001'), NOW)?.reset, S + 60, 'milliseconds, rounded up')
  t.equal(readQuotaHeaders(h('30'), NOW)?.reset, S + 30, 'a delay')
  t.equal(readQuotaHeaders({ 'x-ratelimit-limit': '60' }, NOW), undefined)
  t.equal(readQuotaHeaders({ 'x-ratelimit-limit': 'x', 'x-ratelimit-remaining': '1', 'x-ratelimit-reset': '1' }, NOW), undefined)
  // Remaining 0 without a usable Reset still blocks, as a 429 that says neither: for 60 s (contract "Blocks hold").
  for (const reset of [undefined, 'abc', '', '-5']) {
    const headers = { 'x-ratelimit-limit': '10', 'x-ratelimit-remaining': '0', ...(reset !== undefined && { 'x-ratelimit-reset': reset }) }
    t.same(readQuotaHeaders(headers, NOW), { limit: 10, remaining: 0, reset: S + 60 }, `Remaining 0, Reset ${String(reset)}`)
  }
  t.equal(readQuotaHeaders({ 'x-ratelimit-limit': '10', 'x-ratelimit-remaining': '3', 'x-ratelimit-reset': 'abc' }, NOW), undefined, 'Remaining 3 without a Reset names no window')
})

t.test('Retry-After: delay-seconds or an HTTP-date (RFC 9110 10.2.3), in ms', async (t) => {
  t.equal(readRetryAfter({ 'retry-after': '120' }, NOW), 120_000)
  t.equal(readRetryAfter({ 'retry-after': new Date(NOW + 90_000).toUTCString() }, NOW), 90_000)
  t.equal(readRetryAfter({ 'retry-after': new Date(NOW - 5_000).toUTCString() }, NOW), 0, 'a date in the past')
  t.equal(readRetryAfter({ 'retry-after': 'soon' }, NOW), undefined)
  t.equal(readRetryAfter({}, NOW), undefined)
})

t.test('fault 1: an answer to a request sent before a block began cannot end it', async (t) => {
  let s = EMPTY_LEDGER
  // a mint is sent at NOW and lands 1.5 s later; meanwhile another gets a 429 with no headers at NOW + 500
  s = observe(s, { kind: 'rate_limited', sentAt: NOW + 100, receivedAt: NOW + 500 })
  t.equal(s.blockedUntil, NOW + 500 + DEFAULT_BLOCK_MS)
  s = observe(s, ok(NOW, NOW + 1500, 7))
  t.ok(blockInForce(s, NOW + 2000), 'still blocked 2 s after the 429')
  t.match(admit(s, 0, NOW + 2000), { ok: false, reason: 'blocked' })
  t.match(admit(s, 0, NOW + 500 + DEFAULT_BLOCK_MS), { ok: true }, 'time ends it')
  const later = observe(s, ok(NOW + 2000, NOW + 2100, 6))
  t.notOk(blockInForce(later, NOW + 2200), 'an answer to a request sent after the block began ends it')
})

t.test('fault 2: within one window Remaining only goes down, whatever order answers arrive in', async (t) => {
  let s = observe(EMPTY_LEDGER, ok(NOW + 100, NOW + 200, 0))
  s = observe(s, ok(NOW, NOW + 300, 1))
  t.equal(s.remaining, 0)
  t.match(admit(s, 0, NOW + 400), { ok: false, reason: 'blocked' })
  const older = observe(s, ok(NOW, NOW + 300, 9, S - 60))
  t.equal(older.reset, S + 60, 'an older window never replaces a newer one')
  const newer = observe(s, ok(NOW + 500, NOW + 600, 9, S + 120))
  t.same([newer.reset, newer.remaining], [S + 120, 9], 'a newer window replaces it')
})

t.test('fault 3: with n left, at most n mints in flight', async (t) => {
  const s = observe(EMPTY_LEDGER, ok(NOW, NOW + 10, 2))
  t.match(admit(s, 0, NOW + 20), { ok: true })
  t.match(admit(s, 1, NOW + 20), { ok: true })
  t.match(admit(s, 2, NOW + 20), { ok: false, reason: 'spent' })
  const over = observe(EMPTY_LEDGER, ok(NOW, NOW + 10, 2, S - 1))
  t.match(admit(over, 9, NOW + 20), { ok: true }, 'a window that is over says nothing of the next but its limit')
  t.match(admit(over, 10, NOW + 20), { ok: false, reason: 'spent' })
})

t.test('fault 6: blocks are capped at 25 h; then one probe at a time', async (t) => {
  const absurd = readQuotaHeaders({ 'x-ratelimit-limit': '10', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '1794238711502' }, NOW)
  t.equal(absurd?.reset, 1_794_238_712, 'a Reset in ms is read as ms (here: in the past, so no block)')
  const far = observe(EMPTY_LEDGER, { kind: 'ok', sentAt: NOW, receivedAt: NOW, quota: { limit: 10, remaining: 0, reset: S + 10 * 86400 } })
  t.equal(far.blockedUntil, NOW + MAX_BLOCK_MS)
  const r429 = observe(EMPTY_LEDGER, { kind: 'rate_limited', sentAt: NOW, receivedAt: NOW, retryAfterMs: 30 * 86400_000 })
  t.equal(r429.blockedUntil, NOW + MAX_BLOCK_MS)
  const after = NOW + MAX_BLOCK_MS + 1
  t.match(admit(far, 0, after), { ok: true, probe: true })
  t.match(admit(far, 1, after), { ok: false, reason: 'spent' }, 'one probe at a time')
})

t.test('a 429 blocks until the latest of Reset and Retry-After, or 60 s', async (t) => {
  const both = answerState({ kind: 'rate_limited', sentAt: NOW, receivedAt: NOW, quota: { limit: 10, remaining: 0, reset: S + 30 }, retryAfterMs: 45_000 })
  t.equal(both.blockedUntil, NOW + 45_000)
  const reset = answerState({ kind: 'rate_limited', sentAt: NOW, receivedAt: NOW, quota: { limit: 10, remaining: 0, reset: S + 30 } })
  t.equal(reset.blockedUntil, NOW + 30_000)
  t.equal(answerState({ kind: 'rate_limited', sentAt: NOW, receivedAt: NOW }).blockedUntil, NOW + DEFAULT_BLOCK_MS)
  const staleReset = answerState({ kind: 'rate_limited', sentAt: NOW, receivedAt: NOW, quota: { limit: 10, remaining: 0, reset: S - 30 } })
  t.equal(staleReset.blockedUntil, NOW + DEFAULT_BLOCK_MS, 'a Reset in the past says nothing: 60 s')
})

t.test('errors without headers tell the ledger nothing', async (t) => {
  t.same(answerState({ kind: 'unavailable', sentAt: NOW, receivedAt: NOW }), EMPTY_LEDGER)
  t.same(answerState({ kind: 'error', sentAt: NOW, receivedAt: NOW }), EMPTY_LEDGER)
})
