/** The upstream quota as the broker knows it, shared by every replica. */
export interface QuotaState {
  limit: number | null
  remaining: number | null
  /** Unix seconds when the upstream window resets, as tik.tools said. */
  reset: number | null
  /** Epoch ms until which no upstream call may be made (after a 429 or `Remaining: 0`). */
  blockedUntil: number
}

/** A fixed-window count after one more hit. */
export interface WindowCount {
  count: number
  resetInMs: number
}

/**
 * Counters the broker shares between replicas: per-tenant mint windows and
 * the observed upstream quota. In memory for one process, in Redis for many.
 */
export interface Counters {
  /** Adds one to the fixed window `key` of `windowMs`; answers the count after the hit. */
  increment(key: string, windowMs: number): Promise<WindowCount>
  /** The current count of a window without adding to it (0 when none). */
  peek(key: string): Promise<WindowCount>
  /** The last shared quota observation, if any. */
  readQuota(): Promise<QuotaState | undefined>
  /** Shares an observation; `blockedUntil` only ever moves forward within one upstream window. */
  writeQuota(state: QuotaState): Promise<void>
  close(): Promise<void>
}
