import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyBaseLogger } from 'fastify'
import { LRUCache } from 'lru-cache'
import type { Tenant } from '../config/tenant-schema.js'
import { BrokerError } from '../errors.js'
import { atTurnEnd } from '../http/turn-end.js'
import { failedUpstream, type Minter } from '../mint/minter.js'
import { minRemainingFor } from '../mint/token-time.js'
import type { Grant } from '../policy/grant.js'
import { grantKey, tokenKeyId, type CachedToken, type Landed, type MintFailed, type MintFailure, type MintLock, type ReadAlongLookup, type TokenKey, type TokenStore } from './token-store.js'

/** One mint of a key, as the requests that share it see it. */
interface Flight {
  promise: Promise<ServedToken>
  /** True once it failed (from then on, before its answers, it may be held: FAILURE_HOLD_MS). */
  failed: boolean
  /**
   * When it stopped taking requests (`performance.now()`, ms): a failure, at the end of its hold. A request that
   * arrived before then still gets its answer (it is of that burst); undefined while it takes everyone.
   */
  closedAt: number | undefined
}

/** A token as served, and how: from cache, freshly minted, or shared from a concurrent mint. */
export interface ServedToken {
  token: CachedToken
  source: 'hit' | 'mint' | 'coalesced'
  /** Milliseconds the upstream call took, for a mint. */
  upstreamMs?: number
}

export interface TokenCacheDeps {
  store: TokenStore
  minter: Pick<Minter, 'mint'>
  log: FastifyBaseLogger
  upstreamTimeoutMs: number
  now?: () => number
}

/** How long a failed mint's answer is given to the requests of the same burst, here and on other replicas (ms). */
export const FAILURE_TTL_MS = 1000
/**
 * How long a mint whose call failed (`UPSTREAM_ERROR`, `UPSTREAM_UNAVAILABLE`; not a refusal made before any call)
 * holds its answer, its place in flight and its lock before answering (ms): the requests of its burst that reach the
 * broker meanwhile share it (contract: "one upstream call per key per burst, success or failure"). An upstream that
 * fails at once answers before a burst's last requests have arrived, even when every one was sent before any answer;
 * held, none of its answers has left yet (another replica's waiters get it only as the lock is released), so no
 * client can have sent a request after seeing it: whatever arrives after the hold is a new burst, and calls again.
 */
export const FAILURE_HOLD_MS = 100
/** A subject purged again and again while its mint is in flight gets a 503 after this many mints, not a loop. */
const MINT_ATTEMPTS = 3

const DEGRADED_LOCK: MintLock = { release: async () => {} }

const fromFailure = (f: MintFailure): BrokerError => new BrokerError(f.code, f.message, { headers: f.headers })

/**
 * Serves tokens from the cache and, on a miss, has the {@link Minter} mint
 * one — once per key, however many requests (and replicas) miss at the same
 * time, whether the mint succeeds or fails. Lookup → coalesce → lock → mint → store:
 * - a token is stored only if its subject was not purged while it was minted
 *   (purge generations); otherwise it is neither served nor cached, and minted again;
 * - a failed mint is the answer of everyone waiting for it, here and (left
 *   under the key for {@link FAILURE_TTL_MS} as its lock is released) on other
 *   replicas; a failure of a call is held {@link FAILURE_HOLD_MS} before it is
 *   answered, in flight and locked, so that the rest of its burst shares it; a
 *   request that arrives after that mints anew, and a purge of the subject ends
 *   the sharing at once;
 * - a `rejected` token (tik.tools refused it) is dropped if, and only if, it is
 *   the one cached for the key, and is never served again.
 */
export class TokenCache {
  readonly #deps: TokenCacheDeps
  readonly #now: () => number
  readonly #inflight = new Map<string, Flight>()
  /** Mints that failed, by key id, for {@link FAILURE_TTL_MS} after they left the flight: bounded, and only failures are kept. */
  readonly #failed = new LRUCache<string, Flight>({ max: 10_000, ttl: FAILURE_TTL_MS })

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

  /**
   * The cached token for the grant if it is fresh enough, else undefined: a
   * lookup only, never a mint, never a rejection (a failing store answers
   * undefined). The route starts it beside the count of its limits, so that a hit
   * costs one round trip of each, then hands it to {@link tokenFor}. A store in this
   * process answers at once, a shared one a promise (as {@link TokenStore.get}).
   */
  peek(tenant: Tenant, grant: Grant): CachedToken | undefined | Promise<CachedToken | undefined> {
    return this.#fresh(this.keyFor(tenant, grant), tenant)
  }

  /**
   * The lookup of {@link peek} made by another step on the store's Redis (the limits'
   * count), where the store offers one (TokenStore.readAlong): its key, and the cached
   * token, if fresh enough, from what that step read. Undefined when the store offers none.
   */
  readAlong(tenant: Tenant, grant: Grant): ReadAlongLookup | undefined {
    const along = this.#deps.store.readAlong?.(this.keyFor(tenant, grant))
    if (along === undefined) return undefined
    return {
      key: along.key,
      open: (read) => this.#freshFrom(() => along.open(read), tenant),
    }
  }

  /**
   * A token for the grant: cached when fresh enough, else minted (once per key).
   * `rejected` is a token the caller says tik.tools refused (WebSocket close 4003).
   * `looked` is a {@link peek} already made for this grant (with no `rejected`), null
   * when it found nothing fresh: its answer is used instead of reading the store again.
   * `arrivedAt` is when the request arrived (`performance.now()`, ms): a mint of this key that
   * failed, and whose answers were written only after that, is this request's answer too
   * (it is of that burst); without it, only a mint still in flight is shared.
   */
  async tokenFor(
    tenant: Tenant,
    grant: Grant,
    rejected?: string,
    looked?: CachedToken | Promise<CachedToken | undefined> | null,
    arrivedAt?: number,
  ): Promise<ServedToken> {
    const key = this.keyFor(tenant, grant)
    if (rejected !== undefined) await this.#drop(key, rejected)
    const hit = looked === null ? undefined : await (looked ?? this.#fresh(key, tenant))
    if (hit !== undefined && hit.token !== rejected) return { token: hit, source: 'hit' }
    const id = tokenKeyId(key)
    const flight = this.#sharedWith(id, arrivedAt)
    if (flight !== undefined) {
      const shared = await flight.promise
      if (shared.token.token !== rejected) return { token: shared.token, source: 'coalesced' }
    }
    const running = this.#inflight.get(id)
    if (running !== undefined && running !== flight && running.closedAt === undefined) return this.#join(running.promise, rejected)
    const mine: Flight = { promise: undefined as unknown as Promise<ServedToken>, failed: false, closedAt: undefined }
    mine.promise = this.#mintOnce(key, tenant, grant, rejected, mine)
    // Left in flight until the end of this event-loop turn, after the answers it settled are written: a request read in
    // this turn still joins it. A failure is then kept a while longer for the requests that arrived before it closed
    // but reach this point later (a credential still being verified, a count still on its way to Redis).
    const settled = (failed: boolean): void =>
      atTurnEnd(() => {
        if (this.#inflight.get(id) === mine) this.#inflight.delete(id)
        if (!failed) return
        mine.closedAt ??= performance.now()
        this.#failed.set(id, mine)
      }, 'after')
    mine.promise.then(
      () => settled(false),
      () => settled(true),
    )
    this.#inflight.set(id, mine)
    return mine.promise
  }

  /** The mint of this key a request arriving at `arrivedAt` shares: one that takes everyone, or a failure that closed after it arrived. */
  #sharedWith(id: string, arrivedAt: number | undefined): Flight | undefined {
    const takes = (f: Flight | undefined): Flight | undefined =>
      f !== undefined && (f.closedAt === undefined || (arrivedAt !== undefined && arrivedAt < f.closedAt)) ? f : undefined
    return takes(this.#inflight.get(id)) ?? takes(this.#failed.get(id))
  }

  /**
   * After a purge of the subject: its failed mints, held or kept for late requests, are no one's answer any more
   * (contract: "the next request mints anew"). A shared store's failure is not left for other replicas either
   * (MintLock.release checks the purge generation).
   */
  forgetFailures(tenantId: string, subject: string): void {
    const prefix = tokenKeyId({ tenantId, subject, grant: '' })
    for (const [id, flight] of this.#inflight) if (flight.failed && id.startsWith(prefix)) this.#inflight.delete(id)
    for (const id of [...this.#failed.keys()]) if (id.startsWith(prefix)) this.#failed.delete(id)
  }

  async #join(flight: Promise<ServedToken>, rejected: string | undefined): Promise<ServedToken> {
    const shared = await flight
    if (shared.token.token === rejected) {
      throw new BrokerError('UPSTREAM_UNAVAILABLE', 'A new token is being minted; retry shortly.', { headers: { 'retry-after': 1 } })
    }
    return { token: shared.token, source: 'coalesced' }
  }

  /** True while this process mints a token for one of the subject's keys (a purge then revokes that mint). */
  mintingFor(tenantId: string, subject: string): boolean {
    const prefix = tokenKeyId({ tenantId, subject, grant: '' })
    for (const id of this.#inflight.keys()) if (id.startsWith(prefix)) return true
    return false
  }

  /** Drops the cached token only if it is exactly the one tik.tools refused; anything else changes nothing. */
  async #drop(key: TokenKey, rejected: string): Promise<void> {
    try {
      await this.#deps.store.delete(key, rejected)
    } catch (err) {
      this.#warn(err, 'token store delete failed; the refused token is not served anyway')
    }
  }

  /** A cached token with enough life left, or undefined (at once when the store answers at once); a failing store counts as a miss. */
  #fresh(key: TokenKey, tenant: Tenant): CachedToken | undefined | Promise<CachedToken | undefined> {
    return this.#freshFrom(() => this.#deps.store.get(key), tenant)
  }

  /** What `read` answers, if fresh enough; a read that fails (thrown or rejected) is a miss. */
  #freshFrom(read: () => CachedToken | undefined | Promise<CachedToken | undefined>, tenant: Tenant): CachedToken | undefined | Promise<CachedToken | undefined> {
    let cached: CachedToken | undefined | Promise<CachedToken | undefined>
    try {
      cached = read()
    } catch (err) {
      return this.#readFailed(err)
    }
    if (!(cached instanceof Promise)) return cached !== undefined && this.#isFresh(cached, tenant) ? cached : undefined
    return cached.then(
      (c) => (c !== undefined && this.#isFresh(c, tenant) ? c : undefined),
      (err: unknown) => this.#readFailed(err),
    )
  }

  #readFailed(err: unknown): undefined {
    this.#warn(err, 'token store read failed; treating as a miss')
    return undefined
  }

  #isFresh(token: CachedToken, tenant: Tenant): boolean {
    return token.expiresAt * 1000 - this.#now() >= minRemainingFor(token, tenant.token.minRemaining) * 1000
  }

  /**
   * What another mint of this key left that this request may be answered
   * with: its token, or — for a request that was waiting on it — its failure (thrown).
   */
  #servable(landed: Landed | undefined, tenant: Tenant, rejected: string | undefined, waited: boolean): ServedToken | undefined {
    if (landed === undefined) return undefined
    if ('failure' in landed) {
      if (!waited) return undefined
      if (landed.failure.until <= this.#now()) return undefined
      throw fromFailure(landed.failure)
    }
    if (!this.#isFresh(landed.token, tenant) || landed.token.token === rejected) return undefined
    return { token: landed.token, source: 'coalesced' }
  }

  async #mintOnce(key: TokenKey, tenant: Tenant, grant: Grant, rejected: string | undefined, flight: Flight): Promise<ServedToken> {
    const { store } = this.#deps
    // Read before anything else: a purge after this point voids what this mint brings back.
    const generation = await store.generation(key).catch(() => undefined)
    const lockMs = this.#deps.upstreamTimeoutMs + 2000
    let lock = await this.#lock(key, lockMs)
    if (lock === null) {
      // Another replica is minting this key: take what it leaves, token or failure.
      const theirs = this.#servable(await store.waitForToken(key, lockMs).catch(() => undefined), tenant, rejected, true)
      if (theirs !== undefined) return theirs
      lock = await this.#lock(key, lockMs)
      if (lock === null) {
        throw new BrokerError('UPSTREAM_UNAVAILABLE', 'A concurrent mint did not finish; retry shortly.', { headers: { 'retry-after': 1 } })
      }
    }
    let failed: MintFailed | undefined
    try {
      // A failure left before this request arrived is not its answer: only those that waited share it.
      const landed = this.#servable(await store.landed(key).catch(() => undefined), tenant, rejected, false)
      if (landed !== undefined) return landed
      return await this.#mintAndStore(key, tenant, grant, generation, rejected)
    } catch (err) {
      flight.failed = true
      if (err instanceof BrokerError) {
        // A failure of a call: held in flight and locked, so that the rest of the burst, here and on other replicas, gets
        // this answer (FAILURE_HOLD_MS). Then closed to what arrives after, and left for the lock's waiters as the lock
        // is released, in one step (none of its answers has left before).
        if ((err.code === 'UPSTREAM_ERROR' || err.code === 'UPSTREAM_UNAVAILABLE') && failedUpstream(err)) await sleep(FAILURE_HOLD_MS)
        failed = { failure: { code: err.code, message: err.message, headers: err.headers, until: this.#now() + FAILURE_TTL_MS }, ttlMs: FAILURE_TTL_MS, generation }
      }
      flight.closedAt = performance.now()
      throw err
    } finally {
      await lock.release(failed).catch(() => undefined)
    }
  }

  async #mintAndStore(key: TokenKey, tenant: Tenant, grant: Grant, generation: number | undefined, rejected: string | undefined): Promise<ServedToken> {
    const { store, minter } = this.#deps
    for (let attempt = 0; attempt < MINT_ATTEMPTS; attempt++) {
      // A failure is left for other replicas' waiters as the lock is released, after its hold (#mintOnce).
      const minted = await minter.mint(tenant, grant)
      // The answer to a refused token is never that same token (CONTRACT "A refused token"): tik.tools minting it
      // again (a deterministic token of the same second, say) is an upstream error, for the whole burst (requests
      // without rejected_token that coalesced on this mint too: the token is the refused one), and not cached. The
      // call was made: the quota it spent, the breaker, the share and the audit line count it as a mint.
      if (minted.token.token === rejected) throw new BrokerError('UPSTREAM_ERROR', 'tik.tools answered with the very token it had refused.')
      const { token } = minted
      const ttlMs = Math.floor((token.expiresAt - minRemainingFor(token, tenant.token.minRemaining)) * 1000 - this.#now())
      let stored = true
      try {
        stored = await store.set(key, token, ttlMs, generation)
      } catch (err) {
        this.#warn(err, 'token store write failed; token served uncached')
      }
      if (stored) return { token, source: 'mint', upstreamMs: minted.upstreamMs }
      // The subject was purged while this token was in flight (or its purges could not be checked: Redis went away or
      // came back meanwhile): it is neither served nor cached.
      this.#deps.log.info({ tenant: tenant.id }, 'subject purged during a mint, or its purges could not be checked; the token it brought is discarded')
      generation = await store.generation(key).catch(() => undefined)
    }
    throw new BrokerError('UPSTREAM_UNAVAILABLE', 'The tokens of this subject were revoked during the mint; retry.', {
      headers: { 'retry-after': 1 },
    })
  }

  async #lock(key: TokenKey, ttlMs: number): Promise<MintLock | null> {
    try {
      return await this.#deps.store.acquireMintLock(key, ttlMs)
    } catch (err) {
      // Without the shared lock a replica still coalesces its own requests.
      this.#warn(err, 'mint lock unavailable; minting without it')
      return DEGRADED_LOCK
    }
  }

  #warn(err: unknown, message: string): void {
    this.#deps.log.warn({ err: { message: (err as Error).message } }, message)
  }
}
