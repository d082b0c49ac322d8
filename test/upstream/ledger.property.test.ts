import fc from 'fast-check'
import t from 'tap'
import { answerState, blockInForce, EMPTY_LEDGER, joinLedger, type LedgerAnswer, type LedgerState } from '../../src/upstream/ledger.js'
import { RedisLedger } from '../../src/upstream/redis-ledger.js'
import { redisForTest } from '../helpers/redis.js'

const NOW = 1_800_000_000_000
const S = NOW / 1000

/** Answers in a few windows around NOW, sent and received within a few seconds, of every kind. */
const answerArb: fc.Arbitrary<LedgerAnswer> = fc
  .record({
    kind: fc.constantFrom('ok', 'ok', 'rate_limited', 'error', 'unavailable'),
    sentAt: fc.integer({ min: NOW, max: NOW + 5000 }),
    latency: fc.integer({ min: 0, max: 3000 }),
    quota: fc.option(
      fc.record({ limit: fc.constantFrom(10, 60), remaining: fc.integer({ min: 0, max: 5 }), reset: fc.constantFrom(S - 10, S + 30, S + 60, S + 120) }),
      { nil: undefined },
    ),
    retryAfterMs: fc.option(fc.integer({ min: 0, max: 200_000 }), { nil: undefined }),
  })
  .map(({ kind, sentAt, latency, quota, retryAfterMs }) => ({
    kind: kind as LedgerAnswer['kind'],
    sentAt,
    receivedAt: sentAt + latency,
    quota,
    retryAfterMs: kind === 'rate_limited' ? retryAfterMs : undefined,
  }))

/** The answers of one run, and the order (a permutation) in which they are merged. */
const runArb = fc.array(answerArb, { minLength: 1, maxLength: 12 }).chain((answers) =>
  fc.tuple(fc.constant(answers), fc.shuffledSubarray(answers.map((_, i) => i), { minLength: answers.length, maxLength: answers.length })),
)

/** True when `a`'s answer shows the quota not spent at the time it was sent (it can end an earlier block). */
const clears = (a: LedgerAnswer): boolean => answerState(a).clearedAt > 0

t.test('for every interleaving: Remaining is the least seen for the latest window, and no block ends early', async (t) => {
  fc.assert(
    fc.property(runArb, ([answers, order]) => {
      let state: LedgerState = EMPTY_LEDGER
      const seen: LedgerAnswer[] = []
      for (const i of order) {
        const answer = answers[i] as LedgerAnswer
        seen.push(answer)
        state = joinLedger(state, answerState(answer))
        const windows = seen.filter((a) => a.quota !== undefined).map((a) => a.quota as NonNullable<LedgerAnswer['quota']>)
        if (windows.length > 0) {
          const latest = Math.max(...windows.map((q) => q.reset))
          if (state.reset !== latest) return false
          if (state.remaining !== Math.min(...windows.filter((q) => q.reset === latest).map((q) => q.remaining))) return false
        }
        for (const a of seen) {
          const block = answerState(a)
          if (block.blockedUntil === 0) continue
          const ended = seen.some((b) => clears(b) && b.sentAt > block.blockSince)
          if (ended) continue
          // Required: blocked at every instant before this block's end.
          if (!blockInForce(state, block.blockedUntil - 1)) return false
        }
      }
      return true
    }),
    { numRuns: 2000 },
  )
  t.pass('2,000 random interleavings')
})

t.test('the join is commutative and idempotent; merge order across replicas changes no window', async (t) => {
  fc.assert(
    fc.property(answerArb, answerArb, answerArb, (a, b, c) => {
      const [x, y, z] = [answerState(a), answerState(b), answerState(c)]
      const same = (p: LedgerState, q: LedgerState) => JSON.stringify(p) === JSON.stringify(q)
      const window = (p: LedgerState) => [p.limit, p.remaining, p.reset].join()
      return (
        same(joinLedger(x, y), joinLedger(y, x)) &&
        same(joinLedger(x, x), joinLedger(x, EMPTY_LEDGER)) &&
        window(joinLedger(joinLedger(x, y), z)) === window(joinLedger(x, joinLedger(y, z)))
      )
    }),
    { numRuns: 2000 },
  )
  t.pass()
})

t.test('the Lua script in Redis merges exactly as joinLedger does', async (t) => {
  const { redis, prefix } = await redisForTest(t)
  let run = 0
  await fc.assert(
    fc.asyncProperty(runArb, async ([answers, order]) => {
      const ledger = new RedisLedger({ redis, prefix, keyId: `prop${run++}` })
      let expected: LedgerState = EMPTY_LEDGER
      for (const i of order) {
        const observed = answerState(answers[i] as LedgerAnswer)
        expected = joinLedger(expected, observed)
        const actual = await ledger.record(undefined, observed, NOW)
        if (JSON.stringify(actual) !== JSON.stringify(expected)) {
          t.same(actual, expected, 'Lua and TypeScript disagree')
          return false
        }
      }
      return true
    }),
    { numRuns: 60 },
  )
  t.pass('60 random sequences through Redis')
})
