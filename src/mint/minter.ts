import type { FastifyBaseLogger } from 'fastify'
import type { AuditLog } from '../audit/audit-log.js'
import type { CachedToken } from '../cache/token-store.js'
import type { Tenant } from '../config/tenant-schema.js'
import type { Counters } from '../counters/counters.js'
import { BrokerError } from '../errors.js'
import type { Metrics } from '../metrics/metrics.js'
import type { Grant } from '../policy/grant.js'
import type { CircuitBreaker } from '../upstream/circuit-breaker.js'
import type { MintOutcome, MintRequest, UpstreamClient } from '../upstream/client.js'
import type { UpstreamQuota } from '../upstream/quota.js'
import { describeToken } from './token-time.js'

export interface MinterDeps {
  upstream: Pick<UpstreamClient, 'mint'>
  quota: UpstreamQuota
  breaker: CircuitBreaker
  counters: Counters
  metrics: Metrics
  log: FastifyBaseLogger
  /** How long a reservation may stay unrecorded before it lapses (ms): the upstream timeout plus a margin. */
  reservationTtlMs: number
  audit?: AuditLog
  now?: () => number
}

/** Refusals of a mint made before tik.tools was called (a quota block, an open circuit, a spent tenant share). */
const refusedUnsent = new WeakSet<object>()

/** True unless `err` refused a mint before tik.tools was called (see {@link Minter.mint}): a failure that came from a call. */
export function failedUpstream(err: unknown): boolean {
  return !(typeof err === 'object' && err !== null && refusedUnsent.has(err))
}

function unsent(err: unknown): unknown {
  if (typeof err === 'object' && err !== null) refusedUnsent.add(err)
  return err
}

/** A token fresh from tik.tools, dated on the broker's clock. */
export interface Minted {
  token: CachedToken
  /** Milliseconds the upstream call took. */
  upstreamMs: number
}

/**
 * The gate every cache miss passes on its way to tik.tools, in this order:
 * 1. the quota ledger reserves the call (refused: `UPSTREAM_RATE_LIMITED`, no call);
 * 2. the circuit breaker lets it through (refused: `UPSTREAM_UNAVAILABLE`);
 * 3. the tenant's `upstreamMintsPerMinute` share counts it — only now, so that
 *    the share counts calls made, never ones the ledger or breaker refused;
 * 4. the call; 5. the answer is recorded in the ledger, the breaker and the metrics.
 */
export class Minter {
  readonly #deps: MinterDeps
  readonly #now: () => number

  constructor(deps: MinterDeps) {
    this.#deps = deps
    this.#now = deps.now ?? Date.now
  }

  /** Mints one token for the grant, or throws the contract's error for why not. */
  async mint(tenant: Tenant, grant: Grant): Promise<Minted> {
    const { quota, breaker, metrics } = this.#deps
    const reservation = await quota.reserve(this.#deps.reservationTtlMs).catch((err: unknown) => {
      metrics.rejection(tenant.id, 'upstream')
      throw unsent(err)
    })
    const waitMs = breaker.tryAcquire()
    if (waitMs > 0) {
      await quota.abandon(reservation)
      throw unsent(
        new BrokerError('UPSTREAM_UNAVAILABLE', 'tik.tools is failing; the circuit is open. Retry later.', {
          headers: { 'retry-after': Math.ceil(waitMs / 1000) },
        }),
      )
    }
    try {
      await this.#takeTenantShare(tenant)
    } catch (err) {
      breaker.abandon()
      await quota.abandon(reservation)
      throw unsent(err)
    }
    const body: MintRequest = {
      expire_after: grant.expireAfter,
      max_websockets: grant.maxWebsockets,
      ...(grant.creators !== null && { allowed_creators: grant.creators }),
    }
    const outcome = await this.#deps.upstream.mint(body)
    metrics.mint(tenant.id, outcome.status, outcome.latencyMs / 1000)
    const state = await quota.record(reservation, {
      kind: outcome.ok ? 'ok' : outcome.kind,
      sentAt: outcome.sentAt,
      receivedAt: outcome.receivedAt,
      quota: outcome.quota,
      retryAfterMs: outcome.ok ? undefined : outcome.retryAfterMs,
    })
    metrics.quota(state)
    if (!outcome.ok) throw this.#failure(outcome, tenant)
    breaker.success()
    const token = describeToken(outcome.token, grant.expireAfter, outcome.receivedAt)
    this.#deps.audit?.mint(grant)
    return { token, upstreamMs: outcome.latencyMs }
  }

  /** Counts this call against the tenant's `upstreamMintsPerMinute` share, or refuses it (a refusal is not counted: shares count calls made). */
  async #takeTenantShare(tenant: Tenant): Promise<void> {
    const share = tenant.limits.upstreamMintsPerMinute
    if (share === undefined) return
    const window = await this.#deps.counters.take(`mints:${tenant.id}`, 60_000, share)
    if (!window.taken) {
      this.#deps.metrics.rejection(tenant.id, 'upstream_share')
      throw this.#deps.quota.exhausted(window.resetInMs, undefined, "This tenant's share of the tik.tools quota is spent; retry later.")
    }
  }

  #failure(outcome: Extract<MintOutcome, { ok: false }>, tenant: Tenant): BrokerError {
    const { quota, breaker, log, metrics } = this.#deps
    log.warn({ upstreamStatus: outcome.status, reason: outcome.reason, latencyMs: Math.round(outcome.latencyMs) }, 'upstream mint failed')
    if (outcome.kind === 'rate_limited') {
      breaker.success()
      metrics.rejection(tenant.id, 'upstream')
      const state = quota.current
      return quota.exhausted(Math.max(1000, state.blockedUntil - this.#now()), state)
    }
    if (outcome.kind === 'unavailable' || (typeof outcome.status === 'number' && outcome.status >= 500)) breaker.failure()
    else breaker.success()
    if (outcome.kind === 'unavailable') {
      return new BrokerError('UPSTREAM_UNAVAILABLE', `tik.tools ${outcome.reason}; retry later.`, { headers: { 'retry-after': 5 } })
    }
    return new BrokerError('UPSTREAM_ERROR', 'tik.tools answered with an error.')
  }
}
