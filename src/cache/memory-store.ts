import { LRUCache } from 'lru-cache'
import type { CachedToken, MintLock, TokenKey, TokenStore } from './token-store.js'

const SEP = '\u0000'
const ALWAYS: MintLock = { release: async () => {} }

function keyString(key: TokenKey): string {
  return `${key.tenantId}${SEP}${key.subject ?? ''}${SEP}${key.grant}`
}

/**
 * {@link TokenStore} for one process: a bounded LRU with per-entry TTL.
 * Single-flight within the process is the token cache's job, so the lock is always granted.
 */
export class MemoryTokenStore implements TokenStore {
  readonly #lru: LRUCache<string, CachedToken>

  constructor(options: { max?: number } = {}) {
    this.#lru = new LRUCache({ max: options.max ?? 50_000, ttlAutopurge: false, allowStale: false })
  }

  get size(): number {
    return this.#lru.size
  }

  async get(key: TokenKey): Promise<CachedToken | undefined> {
    return this.#lru.get(keyString(key))
  }

  async set(key: TokenKey, value: CachedToken, ttlMs: number): Promise<void> {
    if (ttlMs > 0) this.#lru.set(keyString(key), value, { ttl: ttlMs })
  }

  async purgeSubject(tenantId: string, subject: string): Promise<number> {
    const prefix = `${tenantId}${SEP}${subject}${SEP}`
    let purged = 0
    for (const k of [...this.#lru.keys()]) if (k.startsWith(prefix) && this.#lru.delete(k)) purged += 1
    return purged
  }

  async acquireMintLock(): Promise<MintLock | null> {
    return ALWAYS
  }

  async waitForToken(key: TokenKey): Promise<CachedToken | undefined> {
    return this.get(key)
  }

  async close(): Promise<void> {
    this.#lru.clear()
  }
}
