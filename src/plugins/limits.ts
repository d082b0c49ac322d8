import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Tenant } from '../config/tenant-schema.js'
import { derivePurposeKey, hashName } from '../cache/crypto.js'
import { BrokerError } from '../errors.js'
import { LocalRateLimitStore, type RateLimitCount, type RateLimitStore, type WindowPair } from '../state/rate-limit-store.js'

/** The broker's own limits on token requests: per subject and per tenant, per minute. */
export interface BrokerLimits {
  /**
   * Counts one request; sets `RateLimit-*` for the subject, or refuses with RATE_LIMITED
   * and `Retry-After`. A store that counts in this process answers at once (undefined,
   * or a thrown refusal); a shared one answers a promise of the step's windows. With `readAlong`
   * (where {@link readsAlong}), they carry the key's value read in the same step (`read`), and with
   * `quotaAlong` too, the quota ledger's window fields (`quota`): see RateLimitStore.hitBoth.
   */
  check(request: FastifyRequest, reply: FastifyReply, tenant: Tenant, subject: string, readAlong?: string, quotaAlong?: string): Promise<WindowPair> | undefined
  /** True when {@link check} can read a key along with its count (the shared store on one Redis; see RateLimitStore.readsAlong). */
  readonly readsAlong: boolean
  /** The tenant's current request window, read without counting. */
  windows(tenant: Tenant): Promise<{ tenant: { count: number; limit: number; resetInSeconds: number } }>
}

declare module 'fastify' {
  interface FastifyInstance {
    limits: BrokerLimits
  }
}

export interface LimitsOptions {
  /** A rate-limit store class (the Redis-backed one, `sharedRateLimitStore`, when replicas share state). */
  store?: unknown
}

const WINDOW_MS = 60_000

/**
 * Both windows are counted in one step of the store (one Redis round trip),
 * with @fastify/rate-limit's fixed-window semantics, keys and `RateLimit-*`
 * arithmetic: a subject over its limit is refused without counting against its tenant.
 */
async function limits(app: FastifyInstance, options: LimitsOptions): Promise<void> {
  const Store = options.store as (new (params: object) => RateLimitStore) | undefined
  const store: RateLimitStore = Store === undefined ? new LocalRateLimitStore() : new Store({}).child({ routeInfo: {} })
  // Keyed, so shared counters (Redis keys) never hold a subject, nor a hash a guessable subject could be matched against.
  // Counters in this process need no hash: nothing outside it sees their keys.
  const subjectKey = derivePurposeKey(app.broker.config.upstream.apiKey, 'rate-limit subjects')
  const subjectId =
    Store === undefined ? (tenantId: string, subject: string) => `${tenantId}\u0000${subject}` : (tenantId: string, subject: string) => hashName(subjectKey, tenantId, subject)

  /** The pair of windows after one step: at once from a store that answers synchronously, else a promise. */
  const hitBoth = (tenant: Tenant, subject: string, readAlong: string | undefined, quotaAlong: string | undefined): WindowPair | Promise<WindowPair> => {
    const id = tenant.id
    return store.hitBoth(`s:{${id}}:${subjectId(id, subject)}`, `t:{${id}}`, WINDOW_MS, tenant.limits.perSubjectPerMinute, readAlong, quotaAlong)
  }

  const refuse = (tenant: Tenant, scope: 'subject' | 'tenant', retryAfter: number): BrokerError => {
    app.broker.metrics.rejection(tenant.id, scope)
    return new BrokerError('RATE_LIMITED', `Too many token requests for this ${scope}; retry in ${retryAfter} s.`, {
      headers: { 'retry-after': retryAfter },
    })
  }

  /** Sets the subject's `RateLimit-*` headers; throws the refusal of a window over its limit. */
  const judge = (reply: FastifyReply, tenant: Tenant, { subject: s, tenant: t }: WindowPair): void => {
    const max = tenant.limits.perSubjectPerMinute
    const reset = Math.ceil(s.ttl / 1000)
    reply.header('ratelimit-limit', max)
    reply.header('ratelimit-remaining', Math.max(0, max - s.current))
    reply.header('ratelimit-reset', reset)
    if (s.current > max) throw refuse(tenant, 'subject', Math.max(1, reset))
    if (t !== undefined && t.current > tenant.limits.perTenantPerMinute) throw refuse(tenant, 'tenant', Math.max(1, Math.ceil(t.ttl / 1000)))
  }

  app.decorate('limits', {
    readsAlong: store.readsAlong === true,
    check(_request, reply, tenant, subject, readAlong, quotaAlong) {
      const pair = hitBoth(tenant, subject, readAlong, quotaAlong)
      if (pair instanceof Promise) return pair.then((p) => (judge(reply, tenant, p), p))
      judge(reply, tenant, pair)
      return undefined
    },
    async windows(tenant) {
      const w = await new Promise<RateLimitCount>((resolve, reject) =>
        store.read(`t:{${tenant.id}}`, (err, r) => (err ? reject(err) : resolve(r as RateLimitCount)), WINDOW_MS, tenant.limits.perTenantPerMinute),
      )
      const limit = tenant.limits.perTenantPerMinute
      return { tenant: { count: Math.min(w.current, limit), limit, resetInSeconds: Math.ceil(w.ttl / 1000) } }
    },
  } satisfies BrokerLimits)
}

export default fp(limits, { name: 'broker-limits', fastify: '5.x', dependencies: ['broker-services'] })
