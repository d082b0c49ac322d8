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
  /** When the half-open trial call started; 0 when none runs. A trial that never reports expires after openMs. */
  #trialSince = 0

  constructor(options: { threshold?: number; openMs?: number; now?: () => number } = {}) {
    this.#threshold = options.threshold ?? 5
    this.#openMs = options.openMs ?? 10_000
    this.#now = options.now ?? Date.now
  }

  /**
   * Asks to make a call: 0 when it may go now (when half-open, it becomes the
   * one trial call), else the milliseconds to wait.
   */
  tryAcquire(): number {
    if (this.#failures < this.#threshold) return 0
    const now = this.#now()
    const left = this.#openUntil - now
    if (left > 0) return left
    if (this.#trialSince !== 0 && now - this.#trialSince < this.#openMs) return 1000
    this.#trialSince = now
    return 0
  }

  /** For metrics and logs. */
  get state(): 'closed' | 'open' | 'half-open' {
    if (this.#failures < this.#threshold) return 'closed'
    return this.#openUntil > this.#now() ? 'open' : 'half-open'
  }

  /** A call {@link tryAcquire} allowed was not made after all: a half-open trial is handed back. */
  abandon(): void {
    this.#trialSince = 0
  }

  /** The upstream answered (even with a 4xx or a 429): it is up. */
  success(): void {
    this.#failures = 0
    this.#trialSince = 0
  }

  /** The upstream failed (unreachable, timed out, 5xx). */
  failure(): void {
    this.#failures += 1
    this.#trialSince = 0
    if (this.#failures >= this.#threshold) this.#openUntil = this.#now() + this.#openMs
  }
}
