import { LRUCache } from 'lru-cache'
import { tokenKeyId, type CachedToken, type Landed, type MintFailure, type MintLock, type Purged, type TokenKey, type TokenStore } from './token-store.js'

const ALWAYS: MintLock = { release: async () => {} }

/** Subjects whose purge generation is remembered; an older one forgotten still counts as purged (see `#purgedSince`). */
const MAX_PURGED_SUBJECTS = 100_000

/** Default bounds: entries, and (estimated) bytes of heap. */
export const MEMORY_STORE_MAX_ENTRIES = 200_000
export const MEMORY_STORE_MAX_BYTES = 128 * 1024 * 1024
/** What an entry costs beyond its two strings: the LRU's slots, its map entry, the TTL bookkeeping (measured ~230 B). */
const ENTRY_OVERHEAD_BYTES = 256

/**
 * A cached token as one flat string, `expiresAt,issuedAt,expireAfter,"token"`, the
 * token as its JSON literal (`JSON.stringify`): no object per entry, the token's own
 * characters stored once, and escaped once, when stored, not on every hit that serves it.
 */
function pack(value: CachedToken): string {
  const packed = `${value.expiresAt},${value.issuedAt ?? ''},${value.expireAfter},${JSON.stringify(value.token)}`
  // A concatenation is a rope that keeps its parts alive; a JWT is ASCII, so latin1 round-trips it into one flat string.
  return /^[\x00-\xff]*$/.test(packed) ? Buffer.from(packed, 'latin1').toString('latin1') : packed
}

function unpack(packed: string): CachedToken {
  const a = packed.indexOf(',')
  const b = packed.indexOf(',', a + 1)
  const c = packed.indexOf(',', b + 1)
  const tokenJson = packed.slice(c + 1)
  return {
    // A JWT has nothing to escape: its literal is the token in quotes. Anything else is read back by JSON.parse.
    token: tokenJson.indexOf('\\') === -1 ? tokenJson.slice(1, -1) : (JSON.parse(tokenJson) as string),
    expiresAt: Number(packed.slice(0, a)),
    issuedAt: b === a + 1 ? null : Number(packed.slice(a + 1, b)),
    expireAfter: Number(packed.slice(b + 1, c)),
    tokenJson,
  }
}

/**
 * {@link TokenStore} for one process: an LRU with per-entry TTL, bounded by
 * entries and by estimated bytes, each token held as one flat string.
 * Single-flight within the process is the token cache's job, so the lock is always granted.
 *
 * Purge generations are one counter for the whole store: a purge takes the
 * next value and remembers it for the subject. A mint stores its token only
 * if its subject's purge is not newer than the generation it read before it
 * began; a subject pushed out of the bounded memory counts as purged at the
 * newest generation forgotten, which can only cost a needless mint, never
 * serve a purged token.
 */
export class MemoryTokenStore implements TokenStore {
  readonly #lru: LRUCache<string, string>
  readonly #failures = new LRUCache<string, MintFailure>({ max: 10_000, ttlAutopurge: false })
  readonly #purged: LRUCache<string, number>
  #generation = 0
  #forgotten = 0

  constructor(options: { max?: number; maxBytes?: number } = {}) {
    this.#lru = new LRUCache<string, string>({
      max: options.max ?? MEMORY_STORE_MAX_ENTRIES,
      maxSize: options.maxBytes ?? MEMORY_STORE_MAX_BYTES,
      sizeCalculation: (packed, key) => ENTRY_OVERHEAD_BYTES + packed.length + key.length,
      ttlAutopurge: false,
      allowStale: false,
    })
    this.#purged = new LRUCache({
      max: MAX_PURGED_SUBJECTS,
      dispose: (generation, _subject, reason) => {
        if (reason === 'evict') this.#forgotten = Math.max(this.#forgotten, generation)
      },
    })
  }

  /** Answers at once: a hit on this store needs no promise. */
  get(key: TokenKey): CachedToken | undefined {
    return this.#read(tokenKeyId(key))
  }

  async set(key: TokenKey, value: CachedToken, ttlMs: number, generation?: number): Promise<boolean> {
    if (generation !== undefined && this.#purgedSince(key, generation)) return false
    if (ttlMs > 0) {
      const id = tokenKeyId(key)
      this.#lru.set(id, pack(value), { ttl: ttlMs })
      this.#failures.delete(id)
    }
    return true
  }

  async delete(key: TokenKey, token: string): Promise<boolean> {
    const id = tokenKeyId(key)
    if (this.#read(id)?.token !== token) return false
    return this.#lru.delete(id)
  }

  /** Its lock is always granted (single flight is the token cache's, which knows its own mints in flight): `minting` is false. */
  async purgeSubject(tenantId: string, subject: string): Promise<Purged> {
    const prefix = tokenKeyId({ tenantId, subject, grant: '' })
    this.#purged.set(prefix, ++this.#generation)
    let tokens = 0
    for (const k of [...this.#lru.keys()]) if (k.startsWith(prefix) && this.#lru.delete(k)) tokens += 1
    return { tokens, minting: false }
  }

  async generation(key: TokenKey): Promise<number> {
    return key.subject === null ? 0 : this.#generation
  }

  async setFailure(key: TokenKey, failure: MintFailure, ttlMs: number): Promise<void> {
    if (ttlMs > 0) this.#failures.set(tokenKeyId(key), failure, { ttl: ttlMs })
  }

  async landed(key: TokenKey): Promise<Landed | undefined> {
    const id = tokenKeyId(key)
    const token = this.#read(id)
    if (token !== undefined) return { token }
    const failure = this.#failures.get(id)
    return failure === undefined ? undefined : { failure }
  }

  async acquireMintLock(): Promise<MintLock | null> {
    return ALWAYS
  }

  async waitForToken(key: TokenKey): Promise<Landed | undefined> {
    return this.landed(key)
  }

  async close(): Promise<void> {
    this.#lru.clear()
    this.#failures.clear()
  }

  /** The entry under a key id, unpacked (every reader of the LRU goes through here). */
  #read(id: string): CachedToken | undefined {
    const packed = this.#lru.get(id)
    return packed === undefined ? undefined : unpack(packed)
  }

  #purgedSince(key: TokenKey, generation: number): boolean {
    if (key.subject === null) return false
    const purgedAt = this.#purged.get(tokenKeyId({ tenantId: key.tenantId, subject: key.subject, grant: '' }))
    return (purgedAt ?? this.#forgotten) > generation
  }
}
