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
