import type { ErrorCode } from '../errors.js'

/** Where a cached token lives: the tenant, whose it is (null when shared by grant), and the grant it was minted for. */
export interface TokenKey {
  tenantId: string
  subject: string | null
  /** Canonical grant: sorted creators, max_websockets, expire_after. */
  grant: string
}

/** A minted upstream token with what the cache needs to decide whether to serve it. */
export interface CachedToken {
  token: string
  /** Unix seconds on the broker's clock: when it stops being valid (see `describeToken`). */
  expiresAt: number
  /**
   * Unix seconds on the broker's clock: when the broker received it, where the token carries `iat` (its lifetime is
   * then `expiresAt − issuedAt`); null where it does not, and `expireAfter` stands for its lifetime (minRemainingFor).
   */
  issuedAt: number | null
  expireAfter: number
  /**
   * `token` as a JSON string literal, quotes included (`JSON.stringify(token)`), where the
   * store made it once per stored token (the memory store keeps it in the entry; the Redis
   * store makes it when it opens a sealed value): a cache hit's body then escapes nothing.
   * Derived from `token`; never stored on its own.
   */
  tokenJson?: string
}

/** A failed mint as the requests that waited for it are answered: the contract's code, message and headers. */
export interface MintFailure {
  code: ErrorCode
  message: string
  headers: Record<string, string | number>
  /** Epoch ms (the broker's clock) after which it is no longer the answer of the current burst. */
  until: number
}

/** What a mint left for a key: its token, or its failure (kept briefly, so that one burst costs one call). */
export type Landed = { token: CachedToken } | { failure: MintFailure }

/** A mint's failure as its lock is released: what to leave for the lock's waiters, for how long (ms), and the purge generation the mint read. */
export interface MintFailed {
  failure: MintFailure
  ttlMs: number
  /** Purge generation read before the mint; undefined: not checked. */
  generation?: number
}

/** Held by the one caller, among every replica, that mints for a key. */
export interface MintLock {
  /**
   * Releases the lock. With `failed`, the mint failed: a shared store leaves that failure for the lock's waiters
   * (`waitForToken`, for `ttlMs`) in the same step, so that none sees it while the lock is still held, unless the
   * subject was purged since `generation`; a store in this process, whose lock is always granted, has no waiters
   * and keeps nothing. Taking the lock again drops a failure left this way.
   */
  release(failed?: MintFailed): Promise<void>
}

/** What a purge found: the tokens it deleted, and whether a mint for the subject was in flight (it is revoked too). */
export interface Purged {
  tokens: number
  /** True when a mint for the subject held the store's mint lock (a shared store's: on any replica). */
  minting: boolean
}

/**
 * The token cache's storage: in memory for one process, in Redis for many.
 * Every implementation passes `test/cache/token-store.contract.ts`.
 */
export interface TokenStore {
  /**
   * The key's token, or undefined. A store in this process answers at once (so that
   * a cache hit needs no promise); a shared one answers a promise.
   */
  get(key: TokenKey): CachedToken | undefined | Promise<CachedToken | undefined>
  /**
   * Optional, for a store in Redis: the key under which another step on the same
   * Redis may read this key's token (the rate-limit count's script does, so that a
   * cache hit costs one command), and how to open what it read. Undefined when no
   * such read is possible now (a Cluster, whose keys of one script share a slot; Redis away).
   */
  readAlong?(key: TokenKey): ReadAlongLookup | undefined
  /**
   * Stores a token for `ttlMs`; it is gone afterwards. With `generation` (read
   * by {@link generation} before the mint began) it is stored only if the
   * subject was not purged since: answers false, storing nothing, when it was.
   */
  set(key: TokenKey, value: CachedToken, ttlMs: number, generation?: number): Promise<boolean>
  /** Removes the key's token only if it is exactly `token` (compare-and-delete); answers whether it did. */
  delete(key: TokenKey, token: string): Promise<boolean>
  /**
   * Forgets every token cached for one subject of a tenant and moves its purge
   * generation on, so that a mint in flight cannot store its token afterwards;
   * answers how many tokens there were, and whether a mint for the subject held
   * this store's mint lock at that moment (a shared store: on any replica).
   */
  purgeSubject(tenantId: string, subject: string): Promise<Purged>
  /** The purge generation of the key's subject (0 for a key shared by grant or a subject never purged). */
  generation(key: TokenKey): Promise<number>
  /** Leaves a failed mint's answer under the key for `ttlMs`, for the requests waiting on it here and on other replicas. */
  setFailure(key: TokenKey, failure: MintFailure, ttlMs: number): Promise<void>
  /** The key's token or recent failure, whichever is there (a token wins). */
  landed(key: TokenKey): Promise<Landed | undefined>
  /** Takes the mint lock for a key, or null when another holder has it. */
  acquireMintLock(key: TokenKey, ttlMs: number): Promise<MintLock | null>
  /** Waits until the lock holder leaves a token or a failure (or gives up); undefined when neither came. */
  waitForToken(key: TokenKey, timeoutMs: number): Promise<Landed | undefined>
  close(): Promise<void>
}

/** A token lookup made by another store's Redis step: the key it reads, and the token from what it read. */
export interface ReadAlongLookup {
  /** The token's Redis key, named in full. */
  key: string
  /**
   * The token from the value read (null: none there), as {@link TokenStore.get} answers it.
   * Undefined means nothing was read (the step ran in this process): the store looks itself.
   */
  open(read: string | null | undefined): CachedToken | undefined | Promise<CachedToken | undefined>
}

/** One string for a key, for in-process maps (single-flight, the memory store). */
export function tokenKeyId(key: TokenKey): string {
  return `${key.tenantId}\u0000${key.subject ?? ''}\u0000${key.grant}`
}

/** The canonical grant part of a key. */
export function grantKey(creators: readonly string[] | null, maxWebsockets: number, expireAfter: number): string {
  return `${creators === null ? '*' : creators.join(',')}|${maxWebsockets}|${expireAfter}`
}
