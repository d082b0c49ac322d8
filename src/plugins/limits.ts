import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Tenant } from '../config/tenant-schema.js'
import { derivePurposeKey, hashName } from '../cache/crypto.js'
import { BrokerError } from '../errors.js'

/** The broker's own limits on token requests: per subject and per tenant, per minute. */
export interface BrokerLimits {
  /** Counts one request; sets `RateLimit-*` for the subject, or throws RATE_LIMITED with `Retry-After`. */
  check(request: FastifyRequest, reply: FastifyReply, tenant: Tenant, subject: string): Promise<void>
  /** The tenant's current request window, read without counting. */
  windows(tenant: Tenant): Promise<{ tenant: { count: number; limit: number; resetInSeconds: number } }>
}

declare module 'fastify' {
  interface FastifyInstance {
    limits: BrokerLimits
  }
  interface FastifyRequest {
    limitKey?: { tenant: Tenant; subject: string }
  }
}

type Limiter = (req: FastifyRequest, options?: { increment: false }) => Promise<{
  isAllowed: boolean
  isExceeded?: boolean
  max?: number
  remaining?: number
  ttlInSeconds?: number
}>


export interface LimitsOptions {
  /** A @fastify/rate-limit store class (the Redis-backed one when replicas share state). */
  store?: unknown
}

async function limits(app: FastifyInstance, options: LimitsOptions): Promise<void> {
  await app.register(rateLimit, {
    global: false,
    cache: 100_000,
    ...(options.store !== undefined && { store: options.store as never }),
  })
  const key = (req: FastifyRequest) => req.limitKey as NonNullable<FastifyRequest['limitKey']>
  // Keyed, so counters (and Redis keys) never hold a subject, nor a hash a guessable subject could be matched against.
  const subjectKey = derivePurposeKey(app.broker.config.upstream.apiKey, 'rate-limit subjects')
  const subjectHash = (tenantId: string, subject: string): string => hashName(subjectKey, tenantId, subject)
  const create = (app as unknown as { createRateLimit(o: object): Limiter }).createRateLimit
  const perSubject = create({
    timeWindow: 60_000,
    keyGenerator: (req: FastifyRequest) => `s:{${key(req).tenant.id}}:${subjectHash(key(req).tenant.id, key(req).subject)}`,
    max: (req: FastifyRequest) => key(req).tenant.limits.perSubjectPerMinute,
  })
  const perTenant = create({
    timeWindow: 60_000,
    keyGenerator: (req: FastifyRequest) => `t:{${key(req).tenant.id}}`,
    max: (req: FastifyRequest) => key(req).tenant.limits.perTenantPerMinute,
  })

  const refuse = (tenant: Tenant, scope: 'subject' | 'tenant', retryAfter: number): BrokerError => {
    app.broker.metrics.rejection(tenant.id, scope)
    return new BrokerError('RATE_LIMITED', `Too many token requests for this ${scope}; retry in ${retryAfter} s.`, {
      headers: { 'retry-after': retryAfter },
    })
  }

  app.decorate('limits', {
    async check(request, reply, tenant, subject) {
      request.limitKey = { tenant, subject }
      const s = await perSubject(request)
      if (!s.isAllowed) {
        reply.headers({
          'ratelimit-limit': s.max,
          'ratelimit-remaining': s.remaining,
          'ratelimit-reset': s.ttlInSeconds,
        })
        if (s.isExceeded === true) throw refuse(tenant, 'subject', Math.max(1, s.ttlInSeconds ?? 1))
      }
      const t = await perTenant(request)
      if (!t.isAllowed && t.isExceeded === true) throw refuse(tenant, 'tenant', Math.max(1, t.ttlInSeconds ?? 1))
    },
    async windows(tenant) {
      // The limiter only needs the key parts and the route config a real request carries.
      const probe = { limitKey: { tenant, subject: '' }, routeOptions: { config: {} } } as unknown as FastifyRequest
      const w = await perTenant(probe, { increment: false })
      const limit = tenant.limits.perTenantPerMinute
      return { tenant: { count: limit - (w.remaining ?? limit), limit, resetInSeconds: w.ttlInSeconds ?? 0 } }
    },
  } satisfies BrokerLimits)
}

export default fp(limits, { name: 'broker-limits', fastify: '5.x', dependencies: ['broker-services'] })
