import { LRUCache } from 'lru-cache'
import type { Counters, WindowCount } from './counters.js'

interface Window {
  count: number
  endsAt: number
}

/** {@link Counters} for one process. Bounded: windows are few (one per tenant) but a cap costs nothing. */
export class MemoryCounters implements Counters {
  readonly #windows = new LRUCache<string, Window>({ max: 100_000 })
  readonly #now: () => number

  constructor(now: () => number = Date.now) {
    this.#now = now
  }

  async take(key: string, windowMs: number, max: number): Promise<WindowCount & { taken: boolean }> {
    const now = this.#now()
    const w = this.#windows.get(key)
    const open = w !== undefined && w.endsAt > now
    const count = open ? w.count : 0
    if (count >= max) return { count, resetInMs: open ? w.endsAt - now : 0, taken: false }
    // The first take starts the window; later ones do not extend it.
    const counted = open ? w : { count: 0, endsAt: now + windowMs }
    if (!open) this.#windows.set(key, counted)
    counted.count += 1
    return { count: counted.count, resetInMs: counted.endsAt - now, taken: true }
  }

  async peek(key: string): Promise<WindowCount> {
    const now = this.#now()
    const w = this.#windows.get(key)
    return w === undefined || w.endsAt <= now ? { count: 0, resetInMs: 0 } : { count: w.count, resetInMs: w.endsAt - now }
  }

  async close(): Promise<void> {}
}

