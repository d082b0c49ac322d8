/**
 * Stops calling an upstream that keeps failing: after `threshold` failures in
 * a row the circuit opens for `openMs`; then one trial call is let through.
 */
export class CircuitBreaker {
  readonly #threshold: number
  readonly #openMs: number
  readonly #now: () => number
  #failures = 0
  #openUntil = 0
  #trialInFlight = false

  constructor(options: { threshold?: number; openMs?: number; now?: () => number } = {}) {
    this.#threshold = options.threshold ?? 5
    this.#openMs = options.openMs ?? 10_000
    this.#now = options.now ?? Date.now
  }

  /** Milliseconds until a call may be tried; 0 when one may go now (and then it is counted as the trial). */
  blockedForMs(): number {
    if (this.#failures < this.#threshold) return 0
    const left = this.#openUntil - this.#now()
    if (left > 0) return left
    if (this.#trialInFlight) return 1000
    this.#trialInFlight = true
    return 0
  }

  get state(): 'closed' | 'open' | 'half-open' {
    if (this.#failures < this.#threshold) return 'closed'
    return this.#openUntil > this.#now() ? 'open' : 'half-open'
  }

  success(): void {
    this.#failures = 0
    this.#trialInFlight = false
  }

  failure(): void {
    this.#failures += 1
    this.#trialInFlight = false
    if (this.#failures >= this.#threshold) this.#openUntil = this.#now() + this.#openMs
  }
}
