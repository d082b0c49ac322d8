import type { Counters, QuotaState } from '../counters/counters.js'
import { BrokerError } from '../errors.js'
import type { QuotaObservation } from './rate-limit-headers.js'

/** How long to stay away after a 429 that says nothing of when to come back. */
const DEFAULT_BLOCK_MS = 60_000

/**
 * The upstream quota as last observed for the API key, shared through
 * {@link Counters}. While it is known to be spent no mint is attempted.
 */
export class UpstreamQuota {
  readonly #counters: Counters
  readonly #now: () => number
  #local: QuotaState | undefined
  #refreshedAt = 0

  constructor(counters: Counters, now: () => number = Date.now) {
    this.#counters = counters
    this.#now = now
  }

  /** The last observation this process knows, for `X-RateLimit-*` on answers served from cache. */
  get current(): QuotaState | undefined {
    return this.#local
  }

  /** `X-RateLimit-*` headers for the last observation, or none. */
  headers(state: QuotaState | undefined = this.#local): Record<string, number> {
    if (state === undefined || state.limit === null || state.remaining === null || state.reset === null) return {}
    return { 'x-ratelimit-limit': state.limit, 'x-ratelimit-remaining': state.remaining, 'x-ratelimit-reset': state.reset }
  }

  /** Re-reads the shared state (another replica may have seen it spent). */
  async refresh(): Promise<QuotaState | undefined> {
    this.#refreshedAt = this.#now()
    const shared = await this.#counters.readQuota()
    if (shared !== undefined) this.#local = shared
    return this.#local
  }

  /**
   * `X-RateLimit-*` for an answer served from cache: the last observation, read
   * from the shared state at most once a second (other replicas mint too).
   * Only a replica that has seen nothing yet waits for that read.
   */
  async headersForHit(): Promise<Record<string, number>> {
    if (this.#now() - this.#refreshedAt >= 1000) {
      const read = this.refresh().catch(() => this.#local)
      if (this.#local === undefined) await read
    }
    return this.headers()
  }

  /** Throws UPSTREAM_RATE_LIMITED when the quota is known to be spent. */
  async assertAvailable(): Promise<void> {
    const state = await this.refresh()
    const waitMs = this.#blockedForMs(state)
    if (waitMs > 0) throw this.exhausted(waitMs, state)
  }

  #blockedForMs(state: QuotaState | undefined): number {
    if (state === undefined) return 0
    const now = this.#now()
    const resetMs = state.reset === null ? 0 : state.reset * 1000
    const spentUntil = state.remaining === 0 ? resetMs : 0
    return Math.max(state.blockedUntil, spentUntil) - now
  }

  /** The contract's 429 for a spent upstream quota, with `Retry-After` and the upstream's headers. */
  exhausted(waitMs: number, state: QuotaState | undefined = this.#local, message?: string): BrokerError {
    return new BrokerError('UPSTREAM_RATE_LIMITED', message ?? 'The tik.tools quota is spent; retry later.', {
      headers: { ...this.headers(state), 'retry-after': Math.max(1, Math.ceil(waitMs / 1000)) },
    })
  }

  /** Records the headers of a successful or failed answer. */
  async observe(observation: QuotaObservation | undefined): Promise<void> {
    if (observation === undefined) return
    await this.#record({ ...observation, blockedUntil: 0 })
  }

  /** Records an upstream 429; answers how long the broker now stays away. */
  async observeRejection(observation: QuotaObservation | undefined, retryAfterSeconds: number | undefined): Promise<number> {
    const now = this.#now()
    const candidates = [
      observation !== undefined && observation.reset * 1000 > now ? observation.reset * 1000 : 0,
      retryAfterSeconds !== undefined ? now + retryAfterSeconds * 1000 : 0,
    ]
    const blockedUntil = Math.max(...candidates) || now + DEFAULT_BLOCK_MS
    await this.#record({
      limit: observation?.limit ?? this.#local?.limit ?? null,
      remaining: 0,
      reset: observation?.reset ?? Math.ceil(blockedUntil / 1000),
      blockedUntil,
    })
    return blockedUntil - now
  }

  async #record(state: QuotaState): Promise<void> {
    this.#local = state
    await this.#counters.writeQuota(state)
  }
}
