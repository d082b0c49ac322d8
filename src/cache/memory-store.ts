import { LRUCache } from 'lru-cache'
import { tokenKeyId, type CachedToken, type MintLock, type TokenKey, type TokenStore } from './token-store.js'

const ALWAYS: MintLock = { release: async () => {} }


/**
 * {@link TokenStore} for one process: a bounded LRU with per-entry TTL.
 * Single-flight within the process is the token cache's job, so the lock is always granted.
 */
export class MemoryTokenStore implements TokenStore {
  readonly #lru: LRUCache<string, CachedToken>

  constructor(options: { max?: number } = {}) {
    this.#lru = new LRUCache({ max: options.max ?? 50_000, ttlAutopurge: false, allowStale: false })
  }

  async get(key: TokenKey): Promise<CachedToken | undefined> {
    return this.#lru.get(tokenKeyId(key))
  }

  async set(key: TokenKey, value: CachedToken, ttlMs: number): Promise<void> {
    if (ttlMs > 0) this.#lru.set(tokenKeyId(key), value, { ttl: ttlMs })
  }

  async purgeSubject(tenantId: string, subject: string): Promise<number> {
    const prefix = tokenKeyId({ tenantId, subject, grant: '' })
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
