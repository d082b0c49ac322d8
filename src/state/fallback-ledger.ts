import type { LedgerState, LedgerWindowFields } from '../upstream/ledger.js'
import { MemoryLedger, type QuotaLedger, type Reservation, type ReserveResult } from '../upstream/quota-ledger.js'
import type { RedisHealth } from './health.js'

/**
 * The shared quota ledger with this process's own copy beside it. Every
 * shared call ships the local state, which Redis joins in, and so does the
 * moment Redis is back: a block observed while Redis was away reaches Redis
 * as soon as this replica sees it return (not only with this replica's next
 * call: another replica may call first), and can never be undone by the older
 * shared state. While Redis is away, reservations are taken locally (this
 * replica's mints only).
 */
export class FallbackLedger implements QuotaLedger {
  readonly #shared: QuotaLedger
  readonly #health: RedisHealth
  readonly #local = new MemoryLedger()

  constructor(shared: QuotaLedger, health: RedisHealth) {
    this.#shared = shared
    this.#health = health
    health.onRecover(() => {
      // What this process learnt while Redis was away, into Redis at once; a failure here is one more outage, noted.
      this.read(Date.now()).catch(() => {})
    })
  }

  /** The shared ledger's hash, for a step that reads its window along (only while Redis answers: the step runs there). */
  get readAlongKey(): string | undefined {
    return this.#shared.readAlongKey
  }

  /** The shared ledger's window fields on their own, while Redis answers; undefined when it is away or fails. */
  async readWindow(): Promise<LedgerWindowFields | undefined> {
    if (!this.#health.available || this.#shared.readWindow === undefined) return undefined
    try {
      return await this.#shared.readWindow()
    } catch (err) {
      this.#health.noteFailure(err)
      return undefined
    }
  }

  /** What this process knows now, without a round trip. */
  get state(): LedgerState {
    return this.#local.state
  }

  /** Reservations this process holds locally (while Redis is away). */
  inFlight(now: number): number {
    return this.#local.inFlight(now)
  }

  async reserve(now: number, ttlMs: number, known?: LedgerState): Promise<ReserveResult> {
    if (known !== undefined) this.#local.absorb(known)
    if (this.#health.available) {
      try {
        const result = await this.#shared.reserve(now, ttlMs, this.#local.state)
        this.#local.absorb(result.state)
        return result
      } catch (err) {
        this.#health.noteFailure(err)
      }
    }
    return this.#local.reserve(now, ttlMs)
  }

  async record(reservation: Reservation | undefined, observed: LedgerState, now: number): Promise<LedgerState> {
    await this.#local.record(reservation?.shared === false ? reservation : undefined, observed)
    if (this.#health.available) {
      try {
        return this.#local.absorb(await this.#shared.record(reservation?.shared === true ? reservation : undefined, this.#local.state, now))
      } catch (err) {
        this.#health.noteFailure(err)
      }
    }
    return this.#local.state
  }

  async read(now: number, known?: LedgerState): Promise<LedgerState> {
    if (known !== undefined) this.#local.absorb(known)
    if (this.#health.available) {
      try {
        return this.#local.absorb(await this.#shared.read(now, this.#local.state))
      } catch (err) {
        this.#health.noteFailure(err)
      }
    }
    return this.#local.state
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.#shared.close(), this.#local.close()])
  }
}
