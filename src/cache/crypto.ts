import { createDecipheriv, createHmac, createSecretKey, hkdfSync, type KeyObject } from 'node:crypto'
import { CompactEncrypt } from 'jose'

/** The two keys the Redis token store needs: one seals values, one hashes key names. */
export interface CacheKeys {
  sealKey: Uint8Array
  nameKey: Uint8Array
}

// Distinct salts, so that a CACHE_ENCRYPTION_KEY equal to the API key still yields other keys.
const SALT_EXPLICIT = 'tiktools-broker/cache/v1/cache-encryption-key'
const SALT_FROM_API_KEY = 'tiktools-broker/cache/v1/tiktools-api-key'

/**
 * Derives the cache keys with HKDF-SHA256 from `CACHE_ENCRYPTION_KEY` (any
 * string) or, when unset, from the API key: every replica holds the API key,
 * so they agree without extra configuration.
 *
 * @example
 * const keys = deriveCacheKeys({ encryptionKey: undefined, apiKey: config.upstream.apiKey })
 */
export function deriveCacheKeys(source: { encryptionKey: string | undefined; apiKey: string }): CacheKeys {
  const ikm = source.encryptionKey ?? source.apiKey
  const salt = source.encryptionKey !== undefined ? SALT_EXPLICIT : SALT_FROM_API_KEY
  const derive = (info: string) => new Uint8Array(hkdfSync('sha256', ikm, salt, info, 32))
  return { sealKey: derive('token sealing (JWE dir A256GCM)'), nameKey: derive('key names (HMAC-SHA256)') }
}

/**
 * A key for the keyed hashes of one purpose (rate-limit keys, audit subjects),
 * derived from a broker secret the way the cache keys are, so every replica
 * with the same secret writes the same hashes.
 */
export function derivePurposeKey(secret: string, purpose: string): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', secret, 'tiktools-broker/keyed-hashes/v1', purpose, 32))
}

/** Names remembered per key and generation; a miss only costs the HMAC. */
export const RECENT_NAMES = 10_000

/**
 * The names a key hashed lately, by first part then second: a lookup reuses the strings a
 * caller already holds (a tenant id, a verified subject, each hashing itself once for
 * all), where one memo keyed by the parts joined made and hashed a new string every call.
 * Two generations of at most {@link RECENT_NAMES} each: when the current one is full it
 * becomes the previous (the one before is dropped), and a name found in the previous
 * one moves back into the current. So at most twice that many names, and the names in
 * use stay.
 */
class RecentNames {
  #current = new Map<string, Map<string | undefined, string>>()
  #previous = new Map<string, Map<string | undefined, string>>()
  #size = 0

  get(first: string, second: string | undefined): string | undefined {
    const name = this.#current.get(first)?.get(second)
    if (name !== undefined) return name
    const old = this.#previous.get(first)?.get(second)
    if (old !== undefined) this.set(first, second, old)
    return old
  }

  set(first: string, second: string | undefined, name: string): void {
    if (this.#size >= RECENT_NAMES) {
      this.#previous = this.#current
      this.#current = new Map()
      this.#size = 0
    }
    let names = this.#current.get(first)
    if (names === undefined) this.#current.set(first, (names = new Map()))
    names.set(second, name)
    this.#size++
  }

  /** Names held, both generations (a name in both counts twice). */
  get size(): number {
    let n = 0
    for (const generation of [this.#current, this.#previous]) for (const names of generation.values()) n += names.size
    return n
  }
}

const recentNames = new WeakMap<Uint8Array, RecentNames>()

/**
 * A keyed, truncated hash (HMAC-SHA-256, RFC 2104; 128 bits, base64url) of one or two
 * parts (two are joined by U+0000 first), so that no subject or grant appears in a key
 * name. Pure: names hashed lately are remembered ({@link RecentNames}).
 */
export function hashName(nameKey: Uint8Array, first: string, second?: string): string {
  let recent = recentNames.get(nameKey)
  if (recent === undefined) recentNames.set(nameKey, (recent = new RecentNames()))
  let name = recent.get(first, second)
  if (name === undefined) {
    const input = second === undefined ? first : `${first}\u0000${second}`
    name = createHmac('sha256', nameKey).update(input).digest('base64url').slice(0, 22)
    recent.set(first, second, name)
  }
  return name
}

/** How many names are remembered for `nameKey` (for tests: the memo stays bounded). */
export function rememberedNames(nameKey: Uint8Array): number {
  return recentNames.get(nameKey)?.size ?? 0
}

const encoder = new TextEncoder()

/**
 * Seals cache values as compact JWE (`dir`, `A256GCM`). The protected header
 * carries the value's slot (`ctx`): it is authenticated, so a value copied to
 * another subject's key does not open there.
 */
export class ValueSealer {
  readonly #key: Uint8Array
  readonly #keyObject: KeyObject

  constructor(sealKey: Uint8Array) {
    this.#key = sealKey
    this.#keyObject = createSecretKey(sealKey)
  }

  /** Encrypts `plaintext` for the slot `context`. */
  async seal(plaintext: string, context: string): Promise<string> {
    return new CompactEncrypt(encoder.encode(plaintext))
      .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', ctx: context })
      .encrypt(this.#key)
  }

  /**
   * Decrypts a sealed value; undefined when it does not open (another key,
   * another slot, garbage). This is every Redis cache hit, so it is RFC 7516
   * compact JWE decryption written out with node:crypto on a key object made
   * once — jose's `compactDecrypt` re-imports the key through WebCrypto on each
   * call, ~15% of a Redis hit. Only `dir` + `A256GCM` with no `zip` or `crit`
   * is accepted; AES-GCM authenticates the protected header (the AAD).
   */
  async open(jwe: string, context: string): Promise<string | undefined> {
    const parts = jwe.split('.')
    if (parts.length !== 5 || parts[1] !== '') return undefined
    const [protectedB64, , ivB64, ciphertextB64, tagB64] = parts as [string, string, string, string, string]
    try {
      const header = JSON.parse(Buffer.from(protectedB64, 'base64url').toString('utf8')) as Record<string, unknown>
      if (header.alg !== 'dir' || header.enc !== 'A256GCM' || 'zip' in header || 'crit' in header || header.ctx !== context) return undefined
      const iv = Buffer.from(ivB64, 'base64url')
      const tag = Buffer.from(tagB64, 'base64url')
      if (iv.length !== 12 || tag.length !== 16) return undefined
      const decipher = createDecipheriv('aes-256-gcm', this.#keyObject, iv, { authTagLength: 16 })
      decipher.setAAD(Buffer.from(protectedB64, 'ascii'))
      decipher.setAuthTag(tag)
      return Buffer.concat([decipher.update(Buffer.from(ciphertextB64, 'base64url')), decipher.final()]).toString('utf8')
    } catch {
      return undefined
    }
  }
}
