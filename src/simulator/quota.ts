/** One quota window as the `X-RateLimit-*` headers describe it. */
export interface QuotaStatus {
  limit: number
  remaining: number
  /** Unix seconds when this window resets. */
  resetAt: number
  /** Seconds until then, at least 1. */
  retryAfter: number
  exhausted: boolean
}

const MINUTE_MS = 60_000
const DAY_MS = 86_400_000

/**
 * Fixed windows anchored at a key's first counted mint (not at clock
 * boundaries), so that a test never straddles a reset by accident.
 */
class FixedWindow {
  private readonly windows = new Map<string, { startedAt: number; count: number }>()

  constructor(readonly limit: number, readonly lengthMs: number) {}

  status(key: string, now: number): QuotaStatus {
    const window = this.current(key, now)
    const count = window?.count ?? 0
    const resetMs = (window?.startedAt ?? now) + this.lengthMs
    return {
      limit: this.limit,
      remaining: Math.max(0, this.limit - count),
      resetAt: Math.ceil(resetMs / 1000),
      retryAfter: Math.max(1, Math.ceil((resetMs - now) / 1000)),
      exhausted: count >= this.limit,
    }
  }

  hit(key: string, now: number): void {
    const window = this.current(key, now)
    if (window) window.count++
    else this.windows.set(key, { startedAt: now, count: 1 })
  }

  clear(): void {
    this.windows.clear()
  }

  private current(key: string, now: number): { startedAt: number; count: number } | undefined {
    const window = this.windows.get(key)
    if (window && now >= window.startedAt + this.lengthMs) {
      this.windows.delete(key)
      return undefined
    }
    return window
  }
}

/** The per-apiKey mint quota: a per-minute and a per-day window. */
export class MintQuota {
  private readonly minute: FixedWindow
  private readonly day: FixedWindow

  constructor(perMinute: number, perDay: number, private readonly now: () => number) {
    this.minute = new FixedWindow(perMinute, MINUTE_MS)
    this.day = new FixedWindow(perDay, DAY_MS)
  }

  /**
   * The window that binds this key now: the per-minute one normally, the
   * per-day one when it is exhausted or tighter; when both are exhausted,
   * the one that resets last.
   */
  status(key: string): QuotaStatus {
    const now = this.now()
    const minute = this.minute.status(key, now)
    const day = this.day.status(key, now)
    if (minute.exhausted && day.exhausted) return day.resetAt >= minute.resetAt ? day : minute
    if (day.exhausted) return day
    if (minute.exhausted) return minute
    return day.remaining < minute.remaining ? day : minute
  }

  /** Counts one successful mint and answers the status after it. */
  consume(key: string): QuotaStatus {
    const now = this.now()
    this.minute.hit(key, now)
    this.day.hit(key, now)
    return this.status(key)
  }

  /** Forgets every window of every key. */
  reset(): void {
    this.minute.clear()
    this.day.clear()
  }
}

/** The `X-RateLimit-*` headers for a status. */
export function quotaHeaders(status: QuotaStatus): Record<string, string> {
  return {
    'x-ratelimit-limit': String(status.limit),
    'x-ratelimit-remaining': String(status.remaining),
    'x-ratelimit-reset': String(status.resetAt),
  }
}
