/**
 * How the soak judges "a cached key is served, faults or not": from every
 * answer to a token request and what each replica logged about its Redis.
 * Pure functions, so that the judgement itself is tested (test/bench/soak-cache-check.test.ts).
 */

/** One answer to a token request. */
export interface TokenAnswer {
  /** subject | creators | max_websockets | expire_after */
  key: string
  /** Which replica answered (`r0`, `r1`). */
  replica: string
  sentAt: number
  doneAt: number
  /** HTTP status; 0 for a transport error. */
  status: number
  /** The error code of a refusal, `data.cached` of a 200. */
  code?: string
  cached?: boolean
  /** Moves when the Redis restart begins and once it is over. */
  epoch: number
  /** True when the epoch did not move while the request was in flight. */
  sameEpoch: boolean
  /** True when the replicas shared tokens as it was answered (false while Redis restarts). */
  sharing: boolean
}

/** [from, to] in epoch ms. */
export type Period = readonly [number, number]

export interface LogEntry {
  time: number
  msg: string
  line: string
}

/** A replica's JSON log lines with their time in epoch ms: pino writes epoch ms, or an ISO string with `isoTime` (the broker's logger). */
export function logEntries(output: string): LogEntry[] {
  const entries: LogEntry[] = []
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue
    let entry: { time?: unknown; msg?: unknown }
    try {
      entry = JSON.parse(line)
    } catch {
      continue
    }
    const time = typeof entry.time === 'string' ? Date.parse(entry.time) : entry.time
    if (typeof time === 'number' && Number.isFinite(time)) entries.push({ time, msg: typeof entry.msg === 'string' ? entry.msg : '', line })
  }
  return entries
}

const OUTAGE = /using local state/
const ONE_FAILURE = /redis command failed|token store .* failed|mint lock unavailable/
const RECOVERY = /redis available again/

/**
 * When a replica said it served from local state, from its log: from "using
 * local state" (Redis slow, refusing writes or gone) to "redis available
 * again" (an info line: the replicas must log at info), or to `end` when it
 * never came back; ±1 s around a single failed command.
 */
export function degradedPeriods(output: string, end: number): Period[] {
  const periods: Period[] = []
  let since: number | undefined
  for (const { time, msg } of logEntries(output)) {
    if (OUTAGE.test(msg)) since ??= time
    else if (ONE_FAILURE.test(msg)) periods.push([time - 1000, time + 1000])
    else if (RECOVERY.test(msg) && since !== undefined) {
      periods.push([since, time])
      since = undefined
    }
  }
  if (since !== undefined) periods.push([since, end])
  return periods
}

/** The log lines in which a replica said it served from local state: an outage began, or one command failed. */
export function outageReports(output: string): LogEntry[] {
  return logEntries(output).filter(({ msg }) => OUTAGE.test(msg) || ONE_FAILURE.test(msg))
}

const overlaps = (periods: readonly Period[] | undefined, a: TokenAnswer): boolean =>
  (periods ?? []).some(([from, to]) => a.doneAt >= from && a.sentAt <= to)

/**
 * True when `a` put its key's token in the shared cache: a 200, judged within
 * one Redis epoch while tokens were shared, from a replica that was not
 * working from local state then (what a replica mints in local state stays
 * in its own memory and is dropped when Redis returns, as documented).
 */
function shares(a: TokenAnswer, degraded: ReadonlyMap<string, readonly Period[]>): boolean {
  return a.status === 200 && a.sameEpoch && a.sharing && !overlaps(degraded.get(a.replica), a)
}

export interface CacheJudgement {
  /** Requests for a key in the shared cache that were not served, while their replica used Redis. */
  notServed: TokenAnswer[]
  /** The same, while their replica said it worked from local state (documented degradation). */
  excused: TokenAnswer[]
}

/**
 * Which requests for a key already in the shared cache were not answered 200:
 * the key's token was shared by an earlier answer (done before this request
 * was sent, in the same Redis epoch), and this request did not cross an epoch.
 * Each is excused only by its own replica's degraded period.
 */
export function judgeCachedKeys(answers: readonly TokenAnswer[], degraded: ReadonlyMap<string, readonly Period[]>): CacheJudgement {
  const sharedAt = new Map<string, number[]>()
  for (const a of answers) {
    if (!shares(a, degraded)) continue
    const key = `${a.epoch}\u0000${a.key}`
    sharedAt.set(key, [...(sharedAt.get(key) ?? []), a.doneAt])
  }
  const judgement: CacheJudgement = { notServed: [], excused: [] }
  for (const a of answers) {
    if (a.status === 200 || !a.sameEpoch) continue
    const shared = (sharedAt.get(`${a.epoch}\u0000${a.key}`) ?? []).some((doneAt) => doneAt <= a.sentAt)
    if (!shared) continue
    if (overlaps(degraded.get(a.replica), a)) judgement.excused.push(a)
    else judgement.notServed.push(a)
  }
  return judgement
}
