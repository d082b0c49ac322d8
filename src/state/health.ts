/**
 * What the fallback wrappers need to know about the shared Redis: whether to
 * try it at all, and where to report a failed command.
 */
export interface RedisHealth {
  /** True while Redis is connected and answering in time. */
  readonly available: boolean
  /** Reports a failed command (a timeout makes the connection suspect for a while). */
  noteFailure(err: unknown): void
  /** Calls `listener` each time Redis becomes available again after an outage. */
  onRecover(listener: () => void): void
  /**
   * Resolves once a suspicion (a command just failed, or the connection just
   * dropped) is decided either way, or after `maxMs` (ms); at once when Redis
   * is not merely suspect. Never rejects. Where absent, nothing is waited for.
   */
  decided?(maxMs: number): Promise<void>
}

/**
 * Runs `shared` while Redis is available and `local` otherwise, or when
 * `shared` fails: the one place where a Redis error becomes degraded service.
 *
 * @example
 * const token = await withFallback(health, () => redisStore.get(key), () => memoryStore.get(key))
 */
export async function withFallback<T>(health: RedisHealth, shared: () => Promise<T>, local: () => T | Promise<T>): Promise<T> {
  if (!health.available) return local()
  try {
    return await shared()
  } catch (err) {
    health.noteFailure(err)
    return local()
  }
}
