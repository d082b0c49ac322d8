import { randomUUID } from 'node:crypto'
import { admit, EMPTY_LEDGER, joinLedger, type Admission, type LedgerState, type LedgerWindowFields } from './ledger.js'

/** A mint reserved against the quota; recorded (or abandoned) exactly once. */
export interface Reservation {
  id: string
  /** Where it was taken: the shared ledger, or this process's while Redis is away. */
  shared: boolean
}

/** The answer to {@link QuotaLedger.reserve}: the decision, the state it was made on, and the reservation when admitted. */
export interface ReserveResult {
  admission: Admission
  state: LedgerState
  reservation?: Reservation
}

/**
 * The tik.tools quota ledger for one API key: in memory for one process, in
 * Redis for many. Every call may carry `known`, a state the caller already
 * holds, which is joined in first — so a block seen while Redis was away
 * reaches Redis with the next call. Every implementation passes
 * `test/upstream/quota-ledger.contract.ts`. Times are epoch ms.
 */
export interface QuotaLedger {
  /** Admits one mint at `now` (see `admit` in ledger.ts); the reservation lapses after `ttlMs` if never recorded. */
  reserve(now: number, ttlMs: number, known?: LedgerState): Promise<ReserveResult>
  /** Joins what an answer said (EMPTY_LEDGER for an abandoned mint) and releases the reservation; answers the joined state. */
  record(reservation: Reservation | undefined, observed: LedgerState, now: number): Promise<LedgerState>
  /** The current state, after joining `known`. */
  read(now: number, known?: LedgerState): Promise<LedgerState>
  /**
   * A shared ledger's Redis hash, named in full (without the client's key prefix), whose window fields
   * another step may read along (LedgerWindowFields); undefined for a ledger in this process.
   */
  readonly readAlongKey?: string
  /**
   * A shared ledger's window fields, read on their own (one HMGET) where no other step can read them
   * along (a Redis Cluster: one script's keys share a slot). Rejects as any Redis command does.
   */
  readWindow?(): Promise<LedgerWindowFields | undefined>
  close(): Promise<void>
}

/** Most reservations one process can hold: a leak (never expected) cannot grow without bound. */
const MAX_RESERVATIONS = 10_000

/** {@link QuotaLedger} for one process. */
export class MemoryLedger implements QuotaLedger {
  #state: LedgerState = EMPTY_LEDGER
  /** Reservation id → epoch ms when it lapses. */
  readonly #flight = new Map<string, number>()

  /** The state as this process knows it (synchronous, for headers and metrics). */
  get state(): LedgerState {
    return this.#state
  }

  /** Mints reserved and not yet recorded at `now`. */
  inFlight(now: number): number {
    for (const [id, until] of this.#flight) if (until <= now) this.#flight.delete(id)
    return this.#flight.size
  }

  /** Joins a state learnt elsewhere (the shared ledger's answer). */
  absorb(state: LedgerState): LedgerState {
    this.#state = joinLedger(this.#state, state)
    return this.#state
  }

  async reserve(now: number, ttlMs: number, known?: LedgerState): Promise<ReserveResult> {
    if (known !== undefined) this.absorb(known)
    const admission = admit(this.#state, this.inFlight(now), now)
    if (!admission.ok || this.#flight.size >= MAX_RESERVATIONS) {
      return { admission: admission.ok ? { ok: false, reason: 'spent', retryAfterMs: 1000 } : admission, state: this.#state }
    }
    const id = randomUUID()
    this.#flight.set(id, now + ttlMs)
    return { admission, state: this.#state, reservation: { id, shared: false } }
  }

  async record(reservation: Reservation | undefined, observed: LedgerState): Promise<LedgerState> {
    if (reservation !== undefined) this.#flight.delete(reservation.id)
    return this.absorb(observed)
  }

  async read(_now: number, known?: LedgerState): Promise<LedgerState> {
    return known === undefined ? this.#state : this.absorb(known)
  }

  async close(): Promise<void> {}
}
