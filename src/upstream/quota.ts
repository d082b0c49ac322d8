import { BrokerError } from '../errors.js'
import { answerState, blockSecondsLeft, EMPTY_LEDGER, joinLedger, windowOf, type LedgerAnswer, type LedgerState, type LedgerWindowFields } from './ledger.js'
import { MemoryLedger, type QuotaLedger, type Reservation } from './quota-ledger.js'

/** Why the ledger refused a mint without calling tik.tools: a block in force, or no call left in the window. */
export type LedgerRefusal = 'blocked' | 'spent'

export interface UpstreamQuotaOptions {
  ledger: QuotaLedger
  now?: () => number
  /** Told of every refusal, for metrics. */
  onRefusal?: (reason: LedgerRefusal) => void
}

/**
 * The broker's view of the tik.tools quota for its API key: the gate every
 * mint passes ({@link reserve} before the call, {@link record} after it) and
 * the `X-RateLimit-*` headers of every answer. The rules are the ledger's
 * (`ledger.ts`); this class keeps the last state it saw so that headers cost
 * no round trip.
 */
export class UpstreamQuota {
  readonly #ledger: QuotaLedger
  readonly #now: () => number
  readonly #onRefusal: (reason: LedgerRefusal) => void
  #known: LedgerState = EMPTY_LEDGER
  #knownHeaders: Record<string, number> | undefined
  #refreshedAt = -Infinity
  #held = 0
  /** The window fields last read along, as read: the same text again changes nothing and is not parsed. */
  #along: LedgerWindowFields | undefined
  /** A ledger in this process: every state it holds was seen here first, so a hit never reads it. */
  readonly #inProcess: boolean

  constructor(options: UpstreamQuotaOptions) {
    this.#ledger = options.ledger
    this.#now = options.now ?? Date.now
    this.#onRefusal = options.onRefusal ?? (() => {})
    this.#inProcess = options.ledger instanceof MemoryLedger
  }

  /** The last state this process saw. */
  get current(): LedgerState {
    return this.#known
  }

  /** The shared ledger's hash, for a cache hit's count to read its window along; undefined for a ledger in this process. */
  get readAlongKey(): string | undefined {
    return this.#ledger.readAlongKey
  }

  /**
   * Joins the shared ledger's window as a cache hit's count read it along (no round trip of its own); answers
   * whether something was read (the hit's headers are then the shared ledger's: {@link headersForHit} `windowRead`).
   * Text that is no number (not the ledger's writing) is no value. Unchanged text is not parsed again.
   */
  absorbAlong(fields: LedgerWindowFields | undefined): boolean {
    if (fields === undefined) return false
    const last = this.#along
    if (last !== undefined && last[0] === fields[0] && last[1] === fields[1] && last[2] === fields[2]) return true
    this.#along = fields
    this.#absorb(windowOf(fields))
    return true
  }

  /**
   * The shared ledger's window, read on its own for a cache hit where its count cannot read it along (a
   * Cluster); undefined for a ledger in this process. Never rejects: a failed read is undefined.
   */
  readWindow(): Promise<LedgerWindowFields | undefined> | undefined {
    if (this.#inProcess || this.#ledger.readWindow === undefined) return undefined
    return this.#ledger.readWindow().catch(() => undefined)
  }

  /** Reservations this process holds: mints on their way to tik.tools. */
  get inFlight(): number {
    return this.#held
  }

  /** Seconds left of the block in force (0 when none), as this process knows it. */
  get blockSeconds(): number {
    return blockSecondsLeft(this.#known, this.#now())
  }

  /** `X-RateLimit-*` of the latest window with the least `Remaining` seen for it, or none before any answer. */
  headers(state: LedgerState = this.#known): Record<string, number> {
    // The common case, the state as last seen, answers one object made once per state (callers only read it).
    if (state === this.#known) return (this.#knownHeaders ??= this.#headersOf(state))
    return this.#headersOf(state)
  }

  #headersOf(state: LedgerState): Record<string, number> {
    if (state.limit === null || state.remaining === null || state.reset === null) return {}
    return { 'x-ratelimit-limit': state.limit, 'x-ratelimit-remaining': state.remaining, 'x-ratelimit-reset': state.reset }
  }

  /**
   * `X-RateLimit-*` for an answer served from cache. Other replicas mint too, so a shared
   * ledger is read whole when this process last read it a second or more ago: its blocks
   * too, for `blockSeconds` and for the fallback's own copy, which decides while Redis is away.
   * `windowRead`: this hit read the ledger's window ({@link absorbAlong}: along with its count on one
   * Redis, with a command of its own on a Cluster), so the headers are current and the read is not
   * waited for; otherwise (Redis away or failing when the hit was counted) the answer waits for it
   * (one round trip, at most once a second), and within that second answers the state last read or
   * seen here.
   */
  headersForHit(windowRead = false): Record<string, number> | Promise<Record<string, number>> {
    const now = this.#now()
    if (this.#inProcess || now - this.#refreshedAt < 1000) return this.headers()
    this.#refreshedAt = now
    const read = this.#ledger.read(now).then(
      (state) => this.headers(this.#absorb(state)),
      () => this.headers(),
    )
    return windowRead ? this.headers() : read
  }

  /**
   * Reserves one mint against the quota. Throws `UPSTREAM_RATE_LIMITED`, with
   * `Retry-After` and the upstream's headers, when a block holds or every call
   * left in the window is already in flight. `ttlMs` bounds a reservation
   * whose holder dies before it records.
   */
  async reserve(ttlMs: number): Promise<Reservation> {
    const result = await this.#ledger.reserve(this.#now(), ttlMs)
    const state = this.#absorb(result.state)
    if (result.admission.ok && result.reservation !== undefined) {
      this.#held += 1
      return result.reservation
    }
    const refusal = result.admission.ok ? { reason: 'spent' as const, retryAfterMs: 1000 } : result.admission
    this.#onRefusal(refusal.reason)
    throw this.exhausted(refusal.retryAfterMs, state)
  }

  /** Records what an answer said and releases its reservation; answers the state after it. */
  async record(reservation: Reservation, answer: LedgerAnswer): Promise<LedgerState> {
    const observed = answerState(answer)
    this.#held -= 1
    this.#absorb(observed)
    return this.#absorb(await this.#ledger.record(reservation, observed, this.#now()).catch(() => this.#known))
  }

  /** Releases a reservation whose call was never made (the breaker or the tenant's share refused it). */
  async abandon(reservation: Reservation): Promise<void> {
    this.#held -= 1
    await this.#ledger.record(reservation, EMPTY_LEDGER, this.#now()).catch(() => undefined)
  }

  /** The contract's 429 for a spent upstream quota, with `Retry-After` (seconds) and the upstream's headers. */
  exhausted(waitMs: number, state: LedgerState = this.#known, message?: string): BrokerError {
    return new BrokerError('UPSTREAM_RATE_LIMITED', message ?? 'The tik.tools quota is spent; retry later.', {
      headers: { ...this.headers(state), 'retry-after': Math.max(1, Math.ceil(waitMs / 1000)) },
    })
  }

  #absorb(state: LedgerState): LedgerState {
    const next = joinLedger(this.#known, state)
    if (next !== this.#known) {
      this.#known = next
      this.#knownHeaders = undefined
    }
    return next
  }
}
