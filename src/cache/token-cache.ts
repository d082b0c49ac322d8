import { decodeJwt } from 'jose'
import type { FastifyBaseLogger } from 'fastify'
import type { AuditLog } from '../audit/audit-log.js'
import type { Tenant } from '../config/tenant-schema.js'
import type { Counters } from '../counters/counters.js'
import { BrokerError } from '../errors.js'
import type { Metrics } from '../metrics/metrics.js'
import type { Grant } from '../policy/grant.js'
import type { CircuitBreaker } from '../upstream/circuit-breaker.js'
import type { MintOutcome, MintRequest, UpstreamClient } from '../upstream/client.js'
import type { UpstreamQuota } from '../upstream/quota.js'
import { grantKey, tokenKeyId, type CachedToken, type MintLock, type TokenKey, type TokenStore } from './token-store.js'

/** A token as served, and how: from cache, freshly minted, or shared from a concurrent mint. */
export interface ServedToken {
  token: CachedToken
  source: 'hit' | 'mint' | 'coalesced'
  /** Milliseconds the upstream call took, for a mint. */
  upstreamMs?: number
}

export interface TokenCacheDeps {
  store: TokenStore
  counters: Counters
  upstream: Pick<UpstreamClient, 'mint'>
  quota: UpstreamQuota
  breaker: CircuitBreaker
  metrics: Metrics
  log: FastifyBaseLogger
  upstreamTimeoutMs: number
  audit?: AuditLog
  now?: () => number
}

/** Seconds a cached token must still have to be served: `minRemaining`, never more than half its life. */
export function minRemainingFor(token: CachedToken, minRemaining: number): number {
  const lifetime = token.issuedAt !== null ? token.expiresAt - token.issuedAt : token.expireAfter
  return Math.min(minRemaining, lifetime / 2)
}

/** Reads `exp`/`iat` from a minted token without verifying it (it is tik.tools' token, not ours to verify). */
export function describeToken(token: string, expireAfter: number, nowMs: number): CachedToken {
  let exp: unknown
  let iat: unknown
  try {
    ;({ exp, iat } = decodeJwt(token))
  } catch {
    // not a JWT we can read: fall back to the lifetime we asked for
  }
  return {
    token,
    expiresAt: typeof exp === 'number' ? exp : Math.floor(nowMs / 1000) + expireAfter,
    issuedAt: typeof iat === 'number' ? iat : null,
    expireAfter,
  }
}

const DEGRADED_LOCK: MintLock = { release: async () => {} }

/**
 * Serves tokens from the cache and mints on a miss — once per key, however
 * many requests (and replicas) miss at the same time.
 */
export class TokenCache {
  readonly #deps: TokenCacheDeps
  readonly #now: () => number
  readonly #inflight = new Map<string, Promise<ServedToken>>()

  constructor(deps: TokenCacheDeps) {
    this.#deps = deps
    this.#now = deps.now ?? Date.now
  }

  /** The cache key a grant is stored under: the subject leaves it when the tenant shares by grant. */
  keyFor(tenant: Tenant, grant: Grant): TokenKey {
    return {
      tenantId: tenant.id,
      subject: tenant.token.share === 'grant' ? null : grant.subject,
      grant: grantKey(grant.creators, grant.maxWebsockets, grant.expireAfter),
    }
  }

  /** A token for the grant: cached when fresh enough, else minted (once per key). */
  async tokenFor(tenant: Tenant, grant: Grant): Promise<ServedToken> {
    const key = this.keyFor(tenant, grant)
    const hit = await this.#fresh(key, tenant)
    if (hit !== undefined) return { token: hit, source: 'hit' }
    const id = tokenKeyId(key)
    const flight = this.#inflight.get(id)
    if (flight !== undefined) {
      const shared = await flight
      return { token: shared.token, source: 'coalesced' }
    }
    const mine = this.#mintOnce(key, tenant, grant).finally(() => this.#inflight.delete(id))
    this.#inflight.set(id, mine)
    return mine
  }

  /** A cached token with enough life left, or undefined; a failing store counts as a miss. */
  async #fresh(key: TokenKey, tenant: Tenant): Promise<CachedToken | undefined> {
    let cached: CachedToken | undefined
    try {
      cached = await this.#deps.store.get(key)
    } catch (err) {
      this.#deps.log.warn({ err: { message: (err as Error).message } }, 'token store read failed; treating as a miss')
      return undefined
    }
    return cached !== undefined && this.#isFresh(cached, tenant) ? cached : undefined
  }

  #isFresh(token: CachedToken, tenant: Tenant): boolean {
    return token.expiresAt * 1000 - this.#now() >= minRemainingFor(token, tenant.token.minRemaining) * 1000
  }

  async #mintOnce(key: TokenKey, tenant: Tenant, grant: Grant): Promise<ServedToken> {
    const lockMs = this.#deps.upstreamTimeoutMs + 2000
    let lock = await this.#lock(key, lockMs)
    if (lock === null) {
      // Another replica is minting this key: take its token when it lands.
      const theirs = await this.#deps.store.waitForToken(key, lockMs).catch(() => undefined)
      if (theirs !== undefined && this.#isFresh(theirs, tenant)) return { token: theirs, source: 'coalesced' }
      lock = await this.#lock(key, lockMs)
      if (lock === null) {
        throw new BrokerError('UPSTREAM_UNAVAILABLE', 'A concurrent mint did not finish; retry shortly.', {
          headers: { 'retry-after': 1 },
        })
      }
    }
    try {
      const landed = await this.#fresh(key, tenant)
      if (landed !== undefined) return { token: landed, source: 'coalesced' }
      return await this.#mint(key, tenant, grant)
    } finally {
      await lock.release().catch(() => undefined)
    }
  }

  async #lock(key: TokenKey, ttlMs: number): Promise<MintLock | null> {
    try {
      return await this.#deps.store.acquireMintLock(key, ttlMs)
    } catch (err) {
      // Without the shared lock a replica still coalesces its own requests.
      this.#deps.log.warn({ err: { message: (err as Error).message } }, 'mint lock unavailable; minting without it')
      return DEGRADED_LOCK
    }
  }

  async #mint(key: TokenKey, tenant: Tenant, grant: Grant): Promise<ServedToken> {
    const { quota, breaker, metrics } = this.#deps
    try {
      await quota.assertAvailable()
    } catch (err) {
      metrics.rejection(tenant.id, 'upstream')
      throw err
    }
    // The share is taken first, so a trial the breaker grants is a call that happens.
    await this.#takeTenantShare(tenant)
    const waitMs = breaker.tryAcquire()
    if (waitMs > 0) {
      throw new BrokerError('UPSTREAM_UNAVAILABLE', 'tik.tools is failing; the circuit is open. Retry later.', {
        headers: { 'retry-after': Math.ceil(waitMs / 1000) },
      })
    }
    const body: MintRequest = {
      expire_after: grant.expireAfter,
      max_websockets: grant.maxWebsockets,
      ...(grant.creators !== null && { allowed_creators: grant.creators }),
    }
    const outcome = await this.#deps.upstream.mint(body)
    metrics.mint(tenant.id, outcome.status, outcome.latencyMs / 1000)
    if (!outcome.ok) throw await this.#failure(outcome, tenant)
    breaker.success()
    this.#deps.audit?.mint(grant)
    await quota.observe(outcome.quota).catch(() => undefined)
    metrics.quota(quota.current)
    const token = describeToken(outcome.token, grant.expireAfter, this.#now())
    const ttlMs = (token.expiresAt - minRemainingFor(token, tenant.token.minRemaining)) * 1000 - this.#now()
    try {
      await this.#deps.store.set(key, token, Math.floor(ttlMs))
    } catch (err) {
      this.#deps.log.warn({ err: { message: (err as Error).message } }, 'token store write failed; token served uncached')
    }
    return { token, source: 'mint', upstreamMs: outcome.latencyMs }
  }

  /** Counts this mint against the tenant's `upstreamMintsPerMinute` share, or refuses it. */
  async #takeTenantShare(tenant: Tenant): Promise<void> {
    const share = tenant.limits.upstreamMintsPerMinute
    if (share === undefined) return
    const window = await this.#deps.counters.increment(`mints:${tenant.id}`, 60_000)
    if (window.count > share) {
      this.#deps.metrics.rejection(tenant.id, 'upstream_share')
      throw this.#deps.quota.exhausted(window.resetInMs, undefined, "This tenant's share of the tik.tools quota is spent; retry later.")
    }
  }

  async #failure(outcome: Extract<MintOutcome, { ok: false }>, tenant: Tenant): Promise<BrokerError> {
    const { quota, breaker, log } = this.#deps
    log.warn({ upstreamStatus: outcome.status, reason: outcome.reason, latencyMs: Math.round(outcome.latencyMs) }, 'upstream mint failed')
    if (outcome.kind === 'rate_limited') {
      breaker.success()
      const waitMs = await quota.observeRejection(outcome.quota, outcome.retryAfterSeconds).catch(() => 60_000)
      this.#deps.metrics.quota(quota.current)
      this.#deps.metrics.rejection(tenant.id, 'upstream')
      return quota.exhausted(waitMs)
    }
    await quota.observe(outcome.quota).catch(() => undefined)
    if (outcome.kind === 'unavailable' || (typeof outcome.status === 'number' && outcome.status >= 500)) breaker.failure()
    else breaker.success()
    if (outcome.kind === 'unavailable') {
      return new BrokerError('UPSTREAM_UNAVAILABLE', `tik.tools ${outcome.reason}; retry later.`, { headers: { 'retry-after': 5 } })
    }
    return new BrokerError('UPSTREAM_ERROR', 'tik.tools answered with an error.')
  }
}
