/** A fixed-window count after one more hit. */
export interface WindowCount {
  count: number
  resetInMs: number
}

/**
 * Counters the broker shares between replicas: per-tenant mint windows. (The
 * upstream quota has its own ledger: `upstream/quota-ledger.ts`.) In memory
 * for one process, in Redis for many.
 */
export interface Counters {
  /**
   * Adds one to the fixed window `key` of `windowMs` unless it already holds `max`
   * (atomically: of concurrent takes, exactly `max` per window are counted); answers
   * the count after, and whether this take was counted. A refused take leaves the
   * window as it was, so the count is what was let through.
   */
  take(key: string, windowMs: number, max: number): Promise<WindowCount & { taken: boolean }>
  /** The current count of a window without adding to it (0 when none). */
  peek(key: string): Promise<WindowCount>
  close(): Promise<void>
}
