import { LRUCache } from 'lru-cache'
import { tokenKeyId, type CachedToken, type MintLock, type TokenKey, type TokenStore } from './token-store.js'

const ALWAYS: MintLock = { release: async () => {} }

/** Default bounds: entries, and (estimated) bytes of heap. */
export const MEMORY_STORE_MAX_ENTRIES = 200_000
export const MEMORY_STORE_MAX_BYTES = 128 * 1024 * 1024
/** What an entry costs beyond its two strings: the LRU's slots, its map entry, the TTL bookkeeping (measured ~230 B). */
const ENTRY_OVERHEAD_BYTES = 256

/**
 * A cached token as one flat string, `expiresAt,issuedAt,expireAfter,token`:
 * no object per entry, and the token's own characters stored once.
 */
function pack(value: CachedToken): string {
  const packed = `${value.expiresAt},${value.issuedAt ?? ''},${value.expireAfter},${value.token}`
  // A concatenation is a rope that keeps its parts alive; a JWT is ASCII, so latin1 round-trips it into one flat string.
  return /^[\x00-\xff]*$/.test(packed) ? Buffer.from(packed, 'latin1').toString('latin1') : packed
}

function unpack(packed: string): CachedToken {
  const a = packed.indexOf(',')
  const b = packed.indexOf(',', a + 1)
  const c = packed.indexOf(',', b + 1)
  return {
    token: packed.slice(c + 1),
    expiresAt: Number(packed.slice(0, a)),
    issuedAt: b === a + 1 ? null : Number(packed.slice(a + 1, b)),
    expireAfter: Number(packed.slice(b + 1, c)),
  }
}

/**
 * {@link TokenStore} for one process: an LRU with per-entry TTL, bounded by
 * entries and by estimated bytes, each token held as one flat string.
 * Single-flight within the process is the token cache's job, so the lock is always granted.
 */
export class MemoryTokenStore implements TokenStore {
  readonly #lru: LRUCache<string, string>

  constructor(options: { max?: number; maxBytes?: number } = {}) {
    this.#lru = new LRUCache<string, string>({
      max: options.max ?? MEMORY_STORE_MAX_ENTRIES,
      maxSize: options.maxBytes ?? MEMORY_STORE_MAX_BYTES,
      sizeCalculation: (packed, key) => ENTRY_OVERHEAD_BYTES + packed.length + key.length,
      ttlAutopurge: false,
      allowStale: false,
    })
  }

  async get(key: TokenKey): Promise<CachedToken | undefined> {
    return this.#read(tokenKeyId(key))
  }

  async set(key: TokenKey, value: CachedToken, ttlMs: number): Promise<void> {
    if (ttlMs > 0) this.#lru.set(tokenKeyId(key), pack(value), { ttl: ttlMs })
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

  /** The entry under a key id, unpacked (every reader of the LRU goes through here). */
  #read(id: string): CachedToken | undefined {
    const packed = this.#lru.get(id)
    return packed === undefined ? undefined : unpack(packed)
  }
}
