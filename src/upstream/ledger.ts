/**
 * The quota ledger's rules as pure functions: what the broker knows of the
 * tik.tools quota for one API key, how a new answer is merged into it, and
 * whether a mint may be sent. The memory ledger calls these directly; the
 * Redis ledger mirrors them in one Lua script (`redis-ledger.ts`), and
 * `test/upstream/ledger.property.test.ts` checks both against every
 * interleaving fast-check can think of.
 *
 * The merge ({@link joinLedger}) is the join of a small CRDT, so the order in
 * which answers arrive, and on which replica, does not matter:
 * - the window: the later `reset` wins; within one `reset`, the least `remaining` (monotone: it never goes back up);
 * - the block: `blockedUntil` and `blockSince` only grow;
 * - `clearedAt`, the send time of the latest answer that shows the quota is
 *   not spent, only grows. A block is in force while `blockSince >= clearedAt`
 *   and `now < blockedUntil`: only time, or the answer to a request sent after
 *   the block began, ends it (CONTRACT "The upstream quota").
 */

/** What the ledger holds. Times in epoch milliseconds, `reset` in unix seconds (as tik.tools sends it). */
export interface LedgerState {
  /** `X-RateLimit-Limit` of the latest window, or null before any was seen. */
  limit: number | null
  /** The least `X-RateLimit-Remaining` seen for that window. */
  remaining: number | null
  /** `X-RateLimit-Reset` of the latest window (unix seconds). */
  reset: number | null
  /** Epoch ms until which no call is made (0: no block). */
  blockedUntil: number
  /** Epoch ms when the current block began (the broker received the answer that caused it). */
  blockSince: number
  /** Epoch ms: send time of the latest answer that showed the quota not spent. */
  clearedAt: number
}

/**
 * The window part of a shared ledger's state as Redis holds it, read along with another
 * step (a cache hit's count): `limit`, `remaining`, `reset` (unix seconds), each the
 * hash field's text, '' or null where none was seen.
 */
export type LedgerWindowFields = readonly [limit: string | null, remaining: string | null, reset: string | null]

/**
 * The window part of a state from its fields as read along (redis-ledger.ts WINDOW_FIELDS),
 * the rest empty: a field that is absent, empty (the script's null) or not a finite number
 * (not the ledger's writing) is null.
 */
export function windowOf(fields: LedgerWindowFields): LedgerState {
  const num = (v: string | null): number | null => {
    if (v === null || v === '') return null
    const n = Number(v)
    return Number.isFinite(n) ? n : null
  }
  return { ...EMPTY_LEDGER, limit: num(fields[0]), remaining: num(fields[1]), reset: num(fields[2]) }
}

/** One upstream answer as the ledger reads it. Times in epoch ms on the broker's clock. */
export interface LedgerAnswer {
  /** `ok` a token came back; `rate_limited` a 429; `error`/`unavailable` anything else. */
  kind: 'ok' | 'rate_limited' | 'error' | 'unavailable'
  /** When the request was sent. */
  sentAt: number
  /** When its answer arrived. */
  receivedAt: number
  /** `X-RateLimit-*` of the answer, `reset` already in unix seconds (see `readQuotaHeaders`). */
  quota?: { limit: number; remaining: number; reset: number } | undefined
  /** `Retry-After` of a 429, in ms from `receivedAt`. */
  retryAfterMs?: number | undefined
}

/** Whether a mint may be sent now; when not, why and for how long (ms). */
export type Admission =
  | { ok: true; probe: boolean }
  | { ok: false; reason: 'blocked' | 'spent'; retryAfterMs: number }

/** A 429 that says nothing of when to come back blocks this long (CONTRACT). */
export const DEFAULT_BLOCK_MS = 60_000
/** No block lasts longer than the longest tik.tools window (a day) plus a margin: 25 h. */
export const MAX_BLOCK_MS = 25 * 3600 * 1000
/** `Retry-After` for a miss refused because every remaining call is already in flight. */
export const IN_FLIGHT_RETRY_MS = 1000

export const EMPTY_LEDGER: LedgerState = Object.freeze({
  limit: null,
  remaining: null,
  reset: null,
  blockedUntil: 0,
  blockSince: 0,
  clearedAt: 0,
})

/** Joins two states (commutative, idempotent; see the module comment). */
export function joinLedger(a: LedgerState, b: LedgerState): LedgerState {
  const ra = a.reset ?? -1
  const rb = b.reset ?? -1
  let window: Pick<LedgerState, 'limit' | 'remaining' | 'reset'>
  if (ra > rb) window = a
  else if (rb > ra) window = b
  else {
    window = {
      reset: a.reset,
      limit: maxOrNull(a.limit, b.limit),
      remaining: minOrNull(a.remaining, b.remaining),
    }
  }
  const clearedAt = Math.max(a.clearedAt, b.clearedAt)
  let blockSince = Math.max(a.blockSince, b.blockSince)
  let blockedUntil = Math.max(a.blockedUntil, b.blockedUntil)
  // A block that a later-sent answer has ended is dropped, so it cannot lend its end to a newer one.
  if (clearedAt > blockSince) {
    blockSince = 0
    blockedUntil = 0
  }
  return { limit: window.limit, remaining: window.remaining, reset: window.reset, blockedUntil, blockSince, clearedAt }
}

/** What one answer tells the ledger, as a state to join. */
export function answerState(answer: LedgerAnswer): LedgerState {
  const { quota, receivedAt } = answer
  const cap = receivedAt + MAX_BLOCK_MS
  let blockedUntil = 0
  if (answer.kind === 'rate_limited') {
    const resetMs = quota !== undefined && quota.reset * 1000 > receivedAt ? quota.reset * 1000 : 0
    const retryMs = answer.retryAfterMs !== undefined ? receivedAt + answer.retryAfterMs : 0
    blockedUntil = Math.max(resetMs, retryMs) || receivedAt + DEFAULT_BLOCK_MS
  } else if (quota !== undefined && quota.remaining === 0 && quota.reset * 1000 > receivedAt) {
    blockedUntil = quota.reset * 1000
  }
  blockedUntil = Math.min(blockedUntil, cap)
  const spent = answer.kind === 'rate_limited' || (quota !== undefined && quota.remaining === 0)
  // A 200, or any answer that shows calls left, proves the quota was not spent when it was sent.
  const clears = !spent && (answer.kind === 'ok' || (quota !== undefined && quota.remaining > 0))
  return {
    limit: quota?.limit ?? null,
    remaining: quota?.remaining ?? null,
    reset: quota?.reset ?? null,
    blockedUntil,
    blockSince: blockedUntil > 0 ? receivedAt : 0,
    clearedAt: clears ? answer.sentAt : 0,
  }
}

/** True while a block is in force at `now` (epoch ms). */
export function blockInForce(state: LedgerState, now: number): boolean {
  return state.blockedUntil > now && state.blockSince >= state.clearedAt
}

/**
 * Decides whether one more mint may be sent at `now` with `inFlight` mints
 * already on their way: never while a block holds; within a known window, at
 * most `remaining` in flight; after a capped block whose window still says
 * spent, one probe at a time; with the window over, at most `limit`.
 */
export function admit(state: LedgerState, inFlight: number, now: number): Admission {
  if (blockInForce(state, now)) return { ok: false, reason: 'blocked', retryAfterMs: state.blockedUntil - now }
  const current = state.reset !== null && state.reset * 1000 > now
  if (current && state.remaining !== null) {
    if (state.remaining === 0) {
      // Only reachable once a block was capped at MAX_BLOCK_MS: one probe call asks again.
      return inFlight === 0 ? { ok: true, probe: true } : { ok: false, reason: 'spent', retryAfterMs: IN_FLIGHT_RETRY_MS }
    }
    return inFlight < state.remaining ? { ok: true, probe: false } : { ok: false, reason: 'spent', retryAfterMs: IN_FLIGHT_RETRY_MS }
  }
  if (state.limit !== null && state.limit > 0 && inFlight >= state.limit) {
    return { ok: false, reason: 'spent', retryAfterMs: IN_FLIGHT_RETRY_MS }
  }
  return { ok: true, probe: false }
}

/** Seconds left of the block in force at `now` (0 when none), for metrics. */
export function blockSecondsLeft(state: LedgerState, now: number): number {
  return blockInForce(state, now) ? (state.blockedUntil - now) / 1000 : 0
}

function maxOrNull(a: number | null, b: number | null): number | null {
  return a === null ? b : b === null ? a : Math.max(a, b)
}

function minOrNull(a: number | null, b: number | null): number | null {
  return a === null ? b : b === null ? a : Math.min(a, b)
}
