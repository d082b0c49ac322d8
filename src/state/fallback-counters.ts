import type { Counters, WindowCount } from '../counters/counters.js'
import { MemoryCounters } from '../counters/memory-counters.js'
import { withFallback, type RedisHealth } from './health.js'

/**
 * The shared {@link Counters}, falling back to this process's while Redis is
 * away: windows are then counted per replica, never skipped.
 */
export class FallbackCounters implements Counters {
  readonly #shared: Counters
  readonly #health: RedisHealth
  readonly #local: MemoryCounters
  #closing: Promise<void> | undefined

  constructor(shared: Counters, health: RedisHealth, now: () => number = Date.now) {
    this.#shared = shared
    this.#health = health
    this.#local = new MemoryCounters(now)
  }

  take(key: string, windowMs: number, max: number): Promise<WindowCount & { taken: boolean }> {
    return withFallback(this.#health, () => this.#shared.take(key, windowMs, max), () => this.#local.take(key, windowMs, max))
  }

  peek(key: string): Promise<WindowCount> {
    return withFallback(this.#health, () => this.#shared.peek(key), () => this.#local.peek(key))
  }

  /** Closes once, however often it is called. */
  close(): Promise<void> {
    this.#closing ??= Promise.allSettled([this.#shared.close(), this.#local.close()]).then(() => undefined)
    return this.#closing
  }
}
