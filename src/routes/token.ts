import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { hashApiKey } from '../auth/api-keys.js'
import { unauthenticated, type Credential } from '../auth/authenticator.js'
import type { Tenant } from '../config/tenant-schema.js'
import { BrokerError } from '../errors.js'
import { grantFor, subjectOf } from '../policy/grant.js'
import { parseTokenRequest } from '../policy/token-request.js'

declare module 'fastify' {
  interface FastifyRequest {
    caller?: { credential: Credential; tenant: Tenant }
    /** True once this request was counted toward its limits (so that an error after it does not count it twice). */
    limitCounted?: boolean
  }
}

const responseSchema = {
  200: {
    type: 'object',
    properties: {
      status_code: { type: 'integer' },
      data: {
        type: 'object',
        properties: {
          token: { type: 'string' },
          expires_at: { type: 'integer' },
          expire_after: { type: 'integer' },
          allowed_creators: { type: ['array', 'null'], items: { type: 'string' } },
          max_websockets: { type: 'integer' },
          cached: { type: 'boolean' },
        },
      },
    },
  },
} as const

/** Who is calling, checked before the body is even read: credential, tenant switch, browser origin. */
async function identify(request: FastifyRequest, reply: FastifyReply): Promise<void> {
  reply.header('cache-control', 'no-store')
  const { tenants } = request.server.broker
  const credential = await tenants.authenticator.authenticate(request.headers.authorization)
  const tenant = tenants.get(credential.tenantId)
  if (tenant === undefined) throw unauthenticated(true)
  request.tokenLog = { tenant: tenant.id }
  if (!tenant.enabled) throw new BrokerError('TENANT_DISABLED', `Tenant ${tenant.id} is disabled.`)
  const origin = request.headers.origin
  if (origin !== undefined && !tenant.cors.origins.includes(origin)) {
    throw new BrokerError('ORIGIN_NOT_ALLOWED', 'This origin is not allowed for the tenant.')
  }
  request.caller = { credential, tenant }
}

/**
 * Whom a request counts against, decided before its body is judged, so that
 * invalid requests spend limits too: the user's subject; in API-key mode the
 * body's `subject` where it is a usable string, else the API key itself (a
 * bucket of its own, under the same per-subject limit).
 */
function limitSubject(request: FastifyRequest, credential: Credential): string {
  if (credential.mode === 'jwt') return credential.subject
  const subject = (request.body as { subject?: unknown } | null | undefined)?.subject
  if (typeof subject === 'string' && subject.length >= 1 && subject.length <= 256) return subject
  const key = /^Bearer +(\S+)/i.exec(request.headers.authorization ?? '')?.[1] ?? ''
  return `\u0000api-key:${hashApiKey(key)}`
}

/** `POST /v1/token`: authenticate, apply the broker's limits, decide the grant, serve it from cache or mint. */
async function tokenRoute(app: FastifyInstance): Promise<void> {
  const { tokens, quota, metrics } = app.broker
  const limits = app.limits
  // Unauthenticated requests count under "unknown": a label set an attacker cannot grow.
  const count = async (request: FastifyRequest): Promise<void> => {
    metrics.request(request.tokenLog?.tenant ?? 'unknown', request.outcome ?? 'INTERNAL')
  }
  // A body refused before the handler ran (not JSON, too large, wrong type) still counts, once.
  const countRefused = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (request.caller === undefined || request.limitCounted === true) return
    await limits.check(request, reply, request.caller.tenant, limitSubject(request, request.caller.credential)).catch(() => undefined)
  }
  app.post('/v1/token', { onRequest: identify, onError: countRefused, onResponse: count, schema: { response: responseSchema } }, async (request, reply) => {
    const { credential, tenant } = request.caller as NonNullable<FastifyRequest['caller']>
    request.limitCounted = true
    await limits.check(request, reply, tenant, limitSubject(request, credential))
    const body = parseTokenRequest(request.body)
    const subject = subjectOf(credential, body)
    const grant = grantFor(tenant, credential, subject, body)
    const served = await tokens.tokenFor(tenant, grant, body.rejected_token)
    metrics.cache(tenant.id, served.source === 'mint' ? 'miss' : served.source)
    request.tokenLog = {
      tenant: tenant.id,
      cache: served.source,
      ...(served.upstreamMs !== undefined && { upstreamMs: Math.round(served.upstreamMs) }),
    }
    request.outcome = 'ok'
    reply.headers(served.source === 'mint' ? quota.headers() : await quota.headersForHit())
    return {
      status_code: 0,
      data: {
        token: served.token.token,
        expires_at: served.token.expiresAt,
        expire_after: grant.expireAfter,
        allowed_creators: grant.creators,
        max_websockets: grant.maxWebsockets,
        cached: served.source === 'hit',
      },
    }
  })
}

export default fp(tokenRoute, { name: 'token-route', fastify: '5.x', dependencies: ['broker-services', 'broker-limits'] })
