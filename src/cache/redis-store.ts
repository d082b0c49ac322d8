import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { RedisClient } from '../state/redis-client.js'
import { defineScript, type RedisScript } from '../state/redis-script.js'
import { hashName, ValueSealer, type CacheKeys } from './crypto.js'
import type { CachedToken, MintLock, TokenKey, TokenStore } from './token-store.js'

/*
 * Key layout (everything one script touches shares a Cluster hash slot):
 *   {prefix}{<tenant>:s:<subjectHash>}:tok:<grantHash>   sealed token, PX = ttl
 *   {prefix}{<tenant>:s:<subjectHash>}:lock:<grantHash>  mint lock, value = owner
 *   {prefix}{<tenant>:s:<subjectHash>}:idx               set of that subject's token keys
 *   {prefix}{<tenant>:g:<grantHash>}:tok / :lock          tokens shared by grant (no subject)
 * Purge uses the per-subject index set rather than a generation counter: it
 * deletes the tokens at once (a purge is often a revocation), and a lost or
 * evicted index can only leave tokens to expire, whereas a lost generation
 * counter would bring purged tokens back. The purge script deletes the keys
 * the index names; they share its slot, so this also holds on Redis Cluster.
 */

const SET_INDEXED = `
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], KEYS[1])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
return 1`

const PURGE = `
local members = redis.call('SMEMBERS', KEYS[1])
local purged = 0
for i = 1, #members do purged = purged + redis.call('DEL', members[i]) end
redis.call('DEL', KEYS[1])
return purged`

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`

// 1 and the value when the token landed, 0 while the lock is held, -1 when neither.
const POLL = `
local v = redis.call('GET', KEYS[1])
if v then return {1, v} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {0} end
return {-1}`

/** Options of {@link RedisTokenStore}. */
export interface RedisTokenStoreOptions {
  redis: RedisClient
  keys: CacheKeys
  /** Namespace of every key, default `tkb:`; tests use their own. */
  prefix?: string
  /** How often `waitForToken` looks again, default 20 ms. */
  pollMs?: number
}

interface Names {
  token: string
  lock: string
  index: string | undefined
  /** The slot and grant a sealed value is bound to. */
  context: string
}

/**
 * {@link TokenStore} shared by replicas through Redis: values sealed as JWE,
 * subjects and grants hashed in key names, the mint lock a `SET NX PX`.
 * Redis errors are thrown; the state's FallbackTokenStore decides what they mean.
 */
export class RedisTokenStore implements TokenStore {
  readonly #redis: RedisClient
  readonly #nameKey: Uint8Array
  readonly #sealer: ValueSealer
  readonly #prefix: string
  readonly #pollMs: number
  readonly #setIndexed: RedisScript<number>
  readonly #purge: RedisScript<number>
  readonly #release: RedisScript<number>
  readonly #poll: RedisScript<[number, string?]>
  #closed = false

  constructor(options: RedisTokenStoreOptions) {
    this.#redis = options.redis
    this.#nameKey = options.keys.nameKey
    this.#sealer = new ValueSealer(options.keys.sealKey)
    this.#prefix = options.prefix ?? 'tkb:'
    this.#pollMs = Math.min(options.pollMs ?? 20, 25)
    this.#setIndexed = defineScript(this.#redis, 'tkbTokenSet', 2, SET_INDEXED)
    this.#purge = defineScript(this.#redis, 'tkbTokenPurge', 1, PURGE)
    this.#release = defineScript(this.#redis, 'tkbLockRelease', 1, RELEASE)
    this.#poll = defineScript(this.#redis, 'tkbTokenPoll', 2, POLL)
  }

  #subjectSlot(tenantId: string, subject: string): string {
    return `${this.#prefix}{${tenantId}:s:${hashName(this.#nameKey, tenantId, subject)}}`
  }

  #names(key: TokenKey): Names {
    const grant = hashName(this.#nameKey, key.tenantId, key.grant)
    if (key.subject === null) {
      const slot = `${this.#prefix}{${key.tenantId}:g:${grant}}`
      return { token: `${slot}:tok`, lock: `${slot}:lock`, index: undefined, context: slot.slice(this.#prefix.length) }
    }
    const slot = this.#subjectSlot(key.tenantId, key.subject)
    return {
      token: `${slot}:tok:${grant}`,
      lock: `${slot}:lock:${grant}`,
      index: `${slot}:idx`,
      context: `${slot.slice(this.#prefix.length)}:${grant}`,
    }
  }

  async get(key: TokenKey): Promise<CachedToken | undefined> {
    const names = this.#names(key)
    const sealed = await this.#redis.get(names.token)
    return sealed === null ? undefined : this.#open(sealed, names.context)
  }

  async set(key: TokenKey, value: CachedToken, ttlMs: number): Promise<void> {
    const ttl = Math.floor(ttlMs)
    if (ttl <= 0) return
    const names = this.#names(key)
    const sealed = await this.#sealer.seal(JSON.stringify(value), names.context)
    if (names.index === undefined) await this.#redis.set(names.token, sealed, 'PX', ttl)
    else await this.#setIndexed([names.token, names.index], [sealed, ttl])
  }

  async purgeSubject(tenantId: string, subject: string): Promise<number> {
    return this.#purge([`${this.#subjectSlot(tenantId, subject)}:idx`], [])
  }

  async acquireMintLock(key: TokenKey, ttlMs: number): Promise<MintLock | null> {
    const { lock } = this.#names(key)
    const owner = randomBytes(16).toString('base64url')
    const ok = await this.#redis.set(lock, owner, 'PX', Math.max(1, Math.floor(ttlMs)), 'NX')
    if (ok !== 'OK') return null
    let released: Promise<void> | undefined
    return {
      // Compare-and-delete: a holder whose lock expired must not free the next holder's.
      release: () => (released ??= this.#release([lock], [owner]).then(() => undefined)),
    }
  }

  async waitForToken(key: TokenKey, timeoutMs: number): Promise<CachedToken | undefined> {
    const names = this.#names(key)
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const [state, sealed] = await this.#poll([names.token, names.lock], [])
      if (state === 1 && sealed !== undefined) return this.#open(sealed, names.context)
      const left = deadline - Date.now()
      if (state === -1 || left <= 0 || this.#closed) return undefined
      await sleep(Math.min(this.#pollMs, left))
    }
  }

  /** Stops waiting loops; the connection belongs to the state, which quits it. */
  async close(): Promise<void> {
    this.#closed = true
  }

  /** A value that does not open or parse (key changed, tampered) is a miss, never an error. */
  async #open(sealed: string, context: string): Promise<CachedToken | undefined> {
    const json = await this.#sealer.open(sealed, context)
    if (json === undefined) return undefined
    try {
      const v = JSON.parse(json) as Partial<CachedToken>
      const valid =
        typeof v.token === 'string' &&
        typeof v.expiresAt === 'number' &&
        typeof v.expireAfter === 'number' &&
        (v.issuedAt === null || typeof v.issuedAt === 'number')
      return valid ? (v as CachedToken) : undefined
    } catch {
      return undefined
    }
  }
}
