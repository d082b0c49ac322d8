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
  /** Unix seconds: the token's own `exp`, or mint time + expire_after. */
  expiresAt: number
  /** Unix seconds: the token's `iat`, when it has one. */
  issuedAt: number | null
  expireAfter: number
}

/** Held by the one caller, among every replica, that mints for a key. */
export interface MintLock {
  release(): Promise<void>
}

/**
 * The token cache's storage: in memory for one process, in Redis for many.
 * Every implementation passes `test/cache/token-store.contract.ts`.
 */
export interface TokenStore {
  get(key: TokenKey): Promise<CachedToken | undefined>
  /** Stores a token for `ttlMs`; it is gone afterwards. */
  set(key: TokenKey, value: CachedToken, ttlMs: number): Promise<void>
  /** Forgets every token cached for one subject of a tenant; answers how many there were. */
  purgeSubject(tenantId: string, subject: string): Promise<number>
  /** Takes the mint lock for a key, or null when another holder has it. */
  acquireMintLock(key: TokenKey, ttlMs: number): Promise<MintLock | null>
  /** Waits until the lock holder stores the token (or gives up); undefined when none came. */
  waitForToken(key: TokenKey, timeoutMs: number): Promise<CachedToken | undefined>
  close(): Promise<void>
}

/** One string for a key, for in-process maps (single-flight, the memory store). */
export function tokenKeyId(key: TokenKey): string {
  return `${key.tenantId}\u0000${key.subject ?? ''}\u0000${key.grant}`
}

/** The canonical grant part of a key. */
export function grantKey(creators: readonly string[] | null, maxWebsockets: number, expireAfter: number): string {
  return `${creators === null ? '*' : creators.join(',')}|${maxWebsockets}|${expireAfter}`
}
