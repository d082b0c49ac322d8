import t from 'tap'
import { degradedPeriods, judgeCachedKeys, logEntries, outageReports, type Period, type TokenAnswer } from '../../bench/soak-cache-check.js'

const T0 = Date.parse('2026-11-30T12:00:00.000Z')
/** A pino line as the broker writes it: `time` an ISO string (logger.ts uses isoTime). */
const line = (ms: number, msg: string, level = 40) => JSON.stringify({ level, time: new Date(T0 + ms).toISOString(), service: 'tiktools-broker', msg })

const answer = (over: Partial<TokenAnswer> & Pick<TokenAnswer, 'replica' | 'sentAt' | 'doneAt' | 'status'>): TokenAnswer => ({
  key: 'hot-1|c1|1|600', epoch: 0, sameEpoch: true, sharing: true, ...over,
})

t.test('log lines: ISO times (the broker) and epoch ms (plain pino) both read', async (t) => {
  const entries = logEntries([line(1500, 'a'), JSON.stringify({ time: T0 + 2000, msg: 'b' }), 'not json', '{"time":"never","msg":"c"}'].join('\n'))
  t.same(entries.map((e) => [e.time - T0, e.msg]), [[1500, 'a'], [2000, 'b']])
})

t.test('degraded periods: from "using local state" to "available again", ±1 s around a single failed command', async (t) => {
  const output = [
    line(1000, 'redis is not answering in time; using local state until it does'),
    line(2100, 'redis available again; sharing state', 30),
    line(5000, 'redis command failed; served from local state (logged at most once a minute)'),
    line(9000, 'redis unavailable; using local state (cache, locks, limits) until it returns'),
  ].join('\n')
  const periods = degradedPeriods(output, T0 + 20_000).map(([a, b]) => [a - T0, b - T0])
  t.same(periods, [[1000, 2100], [4000, 6000], [9000, 20_000]], 'one that never ended lasts to the end of the run')
  t.same(outageReports(output).map((e) => e.time - T0), [1000, 5000, 9000], 'the lines that began them')
})

t.test('a request for a shared key that is not served counts, unless its own replica was degraded', async (t) => {
  const degraded = new Map<string, Period[]>([['r1', [[T0 + 3000, T0 + 4000]]]])
  const answers = [
    answer({ replica: 'r0', sentAt: T0 + 100, doneAt: T0 + 900, status: 200 }),
    answer({ replica: 'r1', sentAt: T0 + 500, doneAt: T0 + 3500, status: 503, code: 'UPSTREAM_UNAVAILABLE' }), // sent before the key was shared
    answer({ replica: 'r1', sentAt: T0 + 3200, doneAt: T0 + 3700, status: 502, code: 'UPSTREAM_ERROR' }), // r1 in local state
    answer({ replica: 'r0', sentAt: T0 + 3300, doneAt: T0 + 3600, status: 503, code: 'UPSTREAM_UNAVAILABLE' }), // r0 was fine: a miss it must not have
  ]
  const { notServed, excused } = judgeCachedKeys(answers, degraded)
  t.same(notServed.map((a) => a.sentAt - T0), [3300])
  t.same(excused.map((a) => a.sentAt - T0), [3200])
})

t.test('a token a replica served while it worked from local state was never shared', async (t) => {
  const degraded = new Map<string, Period[]>([['r1', [[T0 + 1000, T0 + 2000]]]])
  const answers = [
    answer({ replica: 'r1', sentAt: T0 + 1200, doneAt: T0 + 1500, status: 200 }),
    answer({ replica: 'r0', sentAt: T0 + 2500, doneAt: T0 + 2600, status: 503, code: 'UPSTREAM_UNAVAILABLE' }),
  ]
  t.same(judgeCachedKeys(answers, degraded), { notServed: [], excused: [] })
  const fine = judgeCachedKeys(answers, new Map())
  t.equal(fine.notServed.length, 1, 'the same token from a replica that used Redis was shared')
})

t.test('the Redis restart empties the cache: answers across it, or from the epoch before, are not judged', async (t) => {
  const answers = [
    answer({ replica: 'r0', sentAt: T0, doneAt: T0 + 100, status: 200, epoch: 0 }),
    answer({ replica: 'r0', sentAt: T0 + 200, doneAt: T0 + 300, status: 503, epoch: 1, sharing: false }),
    answer({ replica: 'r1', sentAt: T0 + 150, doneAt: T0 + 400, status: 503, epoch: 0, sameEpoch: false }),
    answer({ replica: 'r1', sentAt: T0 + 500, doneAt: T0 + 600, status: 200, epoch: 1, sharing: false }),
    answer({ replica: 'r1', sentAt: T0 + 700, doneAt: T0 + 800, status: 503, epoch: 1 }),
  ]
  t.same(judgeCachedKeys(answers, new Map()), { notServed: [], excused: [] })
})
