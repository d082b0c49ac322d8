import { Cluster } from 'ioredis'
import { LRUCache } from 'lru-cache'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { RedisClient } from '../state/redis-client.js'
import { defineScript, type RedisScript } from '../state/redis-script.js'
import { hashName, ValueSealer, type CacheKeys } from './crypto.js'
import { ERRORS } from '../errors.js'
import type { CachedToken, Landed, MintFailed, MintFailure, MintLock, Purged, ReadAlongLookup, TokenKey, TokenStore } from './token-store.js'

/*
 * Key layout (everything one script touches shares a Cluster hash slot):
 *   {prefix}{<tenant>:s:<subjectHash>}:tok:<grantHash>   sealed token, PX = ttl
 *   {prefix}{<tenant>:s:<subjectHash>}:lock:<grantHash>  mint lock, value = owner
 *   {prefix}{<tenant>:s:<subjectHash>}:fail:<grantHash>  sealed failure of the last mint, PX = 1 s
 *   {prefix}{<tenant>:s:<subjectHash>}:idx               set of that subject's token keys
 *   {prefix}{<tenant>:s:<subjectHash>}:gen               purge generation (INCR by each purge)
 *   {prefix}{<tenant>:s:<subjectHash>}:mint              set of that subject's mint lock keys (a purge tells a mint in flight)
 *   {prefix}{<tenant>:g:<grantHash>}:tok / :lock / :fail  tokens shared by grant (no subject)
 * Purge deletes the tokens the per-subject index names at once (a purge is
 * often a revocation) and moves the generation on; a mint reads the
 * generation before it begins and stores its token only if it is unchanged
 * (one script), so a mint in flight during a purge cannot bring a token back.
 * Every script's keys share one slot, so this also holds on Redis Cluster.
 */

// KEYS: token, index, generation, failure. ARGV: sealed value, ttl, generation read before the mint ('' = unchecked).
const SET_INDEXED = `
if ARGV[3] ~= '' and (redis.call('GET', KEYS[3]) or '0') ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[4])
redis.call('SADD', KEYS[2], KEYS[1])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
return 1`

// KEYS: index, generation, mint-lock set. The generation outlives any mint in flight by far (a day).
// Answers {tokens deleted, 1 when a mint lock of the subject is held (a mint in flight on any replica) else 0};
// lock keys that lapsed or were released are dropped from the set on the way.
const PURGE = `
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], 86400000)
local members = redis.call('SMEMBERS', KEYS[1])
local purged = 0
for i = 1, #members do purged = purged + redis.call('DEL', members[i]) end
redis.call('DEL', KEYS[1])
local minting = 0
local locks = redis.call('SMEMBERS', KEYS[3])
for i = 1, #locks do
  if redis.call('EXISTS', locks[i]) == 1 then minting = 1 else redis.call('SREM', KEYS[3], locks[i]) end
end
return {purged, minting}`

// KEYS: lock, failure[, mint-lock set]. ARGV: owner, ttl (ms). 1 when taken, 0 when held by another. Taken, it drops the
// last mint's failure (no answer for this mint's waiters: a failure under the key is always the last lock holder's) and
// names the lock in the subject's set.
const LOCK = `
if not redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return 0 end
redis.call('DEL', KEYS[2])
if KEYS[3] then
  redis.call('SADD', KEYS[3], KEYS[1])
  if redis.call('PTTL', KEYS[3]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[3], ARGV[2]) end
end
return 1`

// KEYS: token. ARGV: the sealed value seen, to delete only that one.
const DELETE_IF = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`

// KEYS: lock, failure[, mint-lock set, generation]. ARGV: owner, the sealed failure, its ttl (ms)[, generation read before
// the mint ('' = unchecked)]. Still the owner: the failure is left for the lock's waiters and the lock released in one
// step, so no waiter sees it while the lock is held (a new request then takes the lock and mints anew, rather than wait
// and find this failure); not left when the subject was purged meanwhile (no one's answer after the purge). A lock that
// lapsed leaves nothing.
const FAIL_RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if not KEYS[4] or ARGV[4] == '' or (redis.call('GET', KEYS[4]) or '0') == ARGV[4] then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
end
if KEYS[3] then redis.call('SREM', KEYS[3], KEYS[1]) end
return redis.call('DEL', KEYS[1])`

// KEYS: lock[, mint-lock set]. ARGV: owner. Compare-and-delete, and the lock's name out of its subject's set.
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if KEYS[2] then redis.call('SREM', KEYS[2], KEYS[1]) end
  return redis.call('DEL', KEYS[1])
end
return 0`

// KEYS: token, lock, failure. 1 and the value when the token landed, 2 and the failure, 0 while the lock is held, -1 when none.
const POLL = `
local v = redis.call('GET', KEYS[1])
if v then return {1, v} end
local f = redis.call('GET', KEYS[3])
if f then return {2, f} end
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
  failure: string
  index: string | undefined
  /** Purge generation of the subject (undefined when shared by grant). */
  generation: string | undefined
  /** The subject's set of mint lock keys (undefined when shared by grant). */
  mintLocks: string | undefined
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
  /** The value last opened per slot and grant, with the sealed text it came from (bounded: ~2 KiB an entry). Callers only read them. */
  readonly #opened = new LRUCache<string, { sealed: string; value: CachedToken }>({ max: 4096 })
  readonly #prefix: string
  readonly #pollMs: number
  readonly #setIndexed: RedisScript<number>
  readonly #purge: RedisScript<[number, number]>
  readonly #release: RedisScript<number>
  readonly #releaseNamed: RedisScript<number>
  readonly #lock: RedisScript<number>
  readonly #lockNamed: RedisScript<number>
  readonly #failRelease: RedisScript<number>
  readonly #failReleaseNamed: RedisScript<number>
  readonly #poll: RedisScript<[number, string?]>
  readonly #deleteIf: RedisScript<number>
  #closed = false

  constructor(options: RedisTokenStoreOptions) {
    this.#redis = options.redis
    this.#nameKey = options.keys.nameKey
    this.#sealer = new ValueSealer(options.keys.sealKey)
    this.#prefix = options.prefix ?? 'tkb:'
    this.#pollMs = Math.min(options.pollMs ?? 20, 25)
    this.#setIndexed = defineScript(this.#redis, 4, SET_INDEXED)
    this.#purge = defineScript(this.#redis, 3, PURGE)
    this.#release = defineScript(this.#redis, 1, RELEASE)
    this.#releaseNamed = defineScript(this.#redis, 2, RELEASE)
    this.#lock = defineScript(this.#redis, 2, LOCK)
    this.#lockNamed = defineScript(this.#redis, 3, LOCK)
    this.#failRelease = defineScript(this.#redis, 2, FAIL_RELEASE)
    this.#failReleaseNamed = defineScript(this.#redis, 4, FAIL_RELEASE)
    this.#poll = defineScript(this.#redis, 3, POLL)
    this.#deleteIf = defineScript(this.#redis, 1, DELETE_IF)
  }

  #subjectSlot(tenantId: string, subject: string): string {
    return `${this.#prefix}{${tenantId}:s:${hashName(this.#nameKey, tenantId, subject)}}`
  }

  #names(key: TokenKey): Names {
    const grant = hashName(this.#nameKey, key.tenantId, key.grant)
    if (key.subject === null) {
      const slot = `${this.#prefix}{${key.tenantId}:g:${grant}}`
      const context = slot.slice(this.#prefix.length)
      return { token: `${slot}:tok`, lock: `${slot}:lock`, failure: `${slot}:fail`, index: undefined, generation: undefined, mintLocks: undefined, context }
    }
    const slot = this.#subjectSlot(key.tenantId, key.subject)
    return {
      token: `${slot}:tok:${grant}`,
      lock: `${slot}:lock:${grant}`,
      failure: `${slot}:fail:${grant}`,
      index: `${slot}:idx`,
      generation: `${slot}:gen`,
      mintLocks: `${slot}:mint`,
      context: `${slot.slice(this.#prefix.length)}:${grant}`,
    }
  }

  get(key: TokenKey): Promise<CachedToken | undefined> {
    const names = this.#names(key)
    return this.#redis.get(names.token).then((sealed) => (sealed === null ? undefined : this.#open(sealed, names.context)))
  }

  /** On one Redis (not a Cluster): the token key, for a script that reads it along (see TokenStore.readAlong). */
  readAlong(key: TokenKey): ReadAlongLookup | undefined {
    if (this.#redis instanceof Cluster) return undefined
    const names = this.#names(key)
    return {
      key: names.token,
      open: (read) => (read === undefined ? this.get(key) : read === null ? undefined : this.#open(read, names.context)),
    }
  }

  async set(key: TokenKey, value: CachedToken, ttlMs: number, generation?: number): Promise<boolean> {
    const ttl = Math.floor(ttlMs)
    const names = this.#names(key)
    if (ttl <= 0) return generation === undefined || (await this.generation(key)) === generation
    // The stored fields only (a value read from a store carries its derived tokenJson too).
    const { token, expiresAt, issuedAt, expireAfter } = value
    const sealed = await this.#sealer.seal(JSON.stringify({ token, expiresAt, issuedAt, expireAfter }), names.context)
    if (names.index === undefined || names.generation === undefined) {
      await this.#redis.multi().set(names.token, sealed, 'PX', ttl).del(names.failure).exec()
      return true
    }
    const stored = await this.#setIndexed([names.token, names.index, names.generation, names.failure], [sealed, ttl, generation ?? ''])
    return stored === 1
  }

  async delete(key: TokenKey, token: string): Promise<boolean> {
    const names = this.#names(key)
    const sealed = await this.#redis.get(names.token)
    if (sealed === null || (await this.#open(sealed, names.context))?.token !== token) return false
    return (await this.#deleteIf([names.token], [sealed])) === 1
  }

  async purgeSubject(tenantId: string, subject: string): Promise<Purged> {
    const slot = this.#subjectSlot(tenantId, subject)
    const [tokens, minting] = await this.#purge([`${slot}:idx`, `${slot}:gen`, `${slot}:mint`], [])
    return { tokens, minting: minting === 1 }
  }

  async generation(key: TokenKey): Promise<number> {
    const { generation } = this.#names(key)
    if (generation === undefined) return 0
    return Number((await this.#redis.get(generation)) ?? 0)
  }

  async setFailure(key: TokenKey, failure: MintFailure, ttlMs: number): Promise<void> {
    const names = this.#names(key)
    await this.#redis.set(names.failure, await this.#sealFailure(failure, names), 'PX', Math.max(1, Math.floor(ttlMs)))
  }

  /** A failure as it is stored under its key: sealed for that key's slot (`#landed` opens it). */
  #sealFailure(failure: MintFailure, names: Names): Promise<string> {
    return this.#sealer.seal(JSON.stringify(failure), `${names.context}:fail`)
  }

  async landed(key: TokenKey): Promise<Landed | undefined> {
    const names = this.#names(key)
    const [token, failure] = await this.#redis.mget(names.token, names.failure)
    return this.#landed(token === null ? 2 : 1, token ?? failure ?? undefined, names)
  }

  /** A subject's lock is also named in the subject's set, so that a purge on any replica knows a mint is in flight. */
  async acquireMintLock(key: TokenKey, ttlMs: number): Promise<MintLock | null> {
    const names = this.#names(key)
    const { lock, mintLocks, failure, generation } = names
    const owner = randomBytes(16).toString('base64url')
    const ttl = Math.max(1, Math.floor(ttlMs))
    // A key shared by grant has no subject, so no set to name its lock in.
    const taken = (await (mintLocks === undefined ? this.#lock([lock, failure], [owner, ttl]) : this.#lockNamed([lock, failure, mintLocks], [owner, ttl]))) === 1
    if (!taken) return null
    const unlock = async (failed?: MintFailed): Promise<unknown> => {
      if (failed === undefined) return mintLocks === undefined ? this.#release([lock], [owner]) : this.#releaseNamed([lock, mintLocks], [owner])
      const args = [owner, await this.#sealFailure(failed.failure, names), Math.max(1, Math.floor(failed.ttlMs))]
      if (mintLocks === undefined || generation === undefined) return this.#failRelease([lock, failure], args)
      return this.#failReleaseNamed([lock, failure, mintLocks, generation], [...args, failed.generation ?? ''])
    }
    let released: Promise<void> | undefined
    return {
      // Compare-and-delete: a holder whose lock expired must not free the next holder's.
      // Released once; a release that failed (Redis away) may be sent again.
      release: (failed) =>
        (released ??= unlock(failed).then(
          () => undefined,
          (err: unknown) => {
            released = undefined
            throw err
          },
        )),
    }
  }

  async waitForToken(key: TokenKey, timeoutMs: number): Promise<Landed | undefined> {
    const names = this.#names(key)
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const [state, sealed] = await this.#poll([names.token, names.lock, names.failure], [])
      if (state > 0) return this.#landed(state, sealed, names)
      const left = deadline - Date.now()
      if (state === -1 || left <= 0 || this.#closed) return undefined
      await sleep(Math.min(this.#pollMs, left))
    }
  }

  /** Stops waiting loops; the connection belongs to the state, which quits it. */
  async close(): Promise<void> {
    this.#closed = true
  }

  async #landed(state: number, sealed: string | undefined, names: Names): Promise<Landed | undefined> {
    if (sealed === undefined) return undefined
    if (state === 1) {
      const token = await this.#open(sealed, names.context)
      return token === undefined ? undefined : { token }
    }
    const failure = await this.#openFailure(sealed, `${names.context}:fail`)
    return failure === undefined ? undefined : { failure }
  }

  async #openFailure(sealed: string, context: string): Promise<MintFailure | undefined> {
    const json = await this.#sealer.open(sealed, context)
    if (json === undefined) return undefined
    try {
      const v = JSON.parse(json) as Partial<MintFailure>
      const valid = typeof v.code === 'string' && v.code in ERRORS && typeof v.message === 'string' && typeof v.headers === 'object' && v.headers !== null && typeof v.until === 'number'
      return valid ? (v as MintFailure) : undefined
    } catch {
      return undefined
    }
  }

  /**
   * A value that does not open or parse (key changed, tampered) is a miss, never an error.
   * A hot key's value is the same sealed text on every hit: it is opened (authenticated,
   * for this slot) once, and known again by its slot and exact text, at once.
   */
  #open(sealed: string, context: string): CachedToken | undefined | Promise<CachedToken | undefined> {
    const known = this.#opened.get(context)
    if (known !== undefined && known.sealed === sealed) return known.value
    return this.#openAnew(sealed, context).then((value) => {
      if (value !== undefined) this.#opened.set(context, { sealed, value })
      return value
    })
  }

  async #openAnew(sealed: string, context: string): Promise<CachedToken | undefined> {
    const json = await this.#sealer.open(sealed, context)
    if (json === undefined) return undefined
    try {
      const v = JSON.parse(json) as Partial<CachedToken>
      const { token, expiresAt, issuedAt, expireAfter } = v
      const valid = typeof token === 'string' && typeof expiresAt === 'number' && typeof expireAfter === 'number' && (issuedAt === null || typeof issuedAt === 'number')
      // Opened once per sealed text (see #open): its JSON literal is made here, not on every hit.
      return valid ? { token, expiresAt, issuedAt, expireAfter, tokenJson: JSON.stringify(token) } : undefined
    } catch {
      return undefined
    }
  }
}
