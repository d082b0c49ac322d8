import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { hashApiKey } from '../auth/api-keys.js'
import { repeatsAuthorization, unauthenticated, type Credential } from '../auth/authenticator.js'
import type { Tenant } from '../config/tenant-schema.js'
import { BrokerError, JSON_CONTENT_TYPE } from '../errors.js'
import { grantFor, subjectOf, type Grant } from '../policy/grant.js'
import { parseTokenRequest, type TokenRequest } from '../policy/token-request.js'
import { EXPOSED_HEADERS } from '../http/cors.js'
import { jsonString, jsonStringArray } from '../http/json-text.js'
import { sendAtTurnEnd } from '../http/turn-writes.js'
import type { ServedToken } from '../cache/token-cache.js'
import type { CachedToken, ReadAlongLookup } from '../cache/token-store.js'
import type { WindowPair } from '../state/rate-limit-store.js'
import type { LedgerWindowFields } from '../upstream/ledger.js'

declare module 'fastify' {
  interface FastifyRequest {
    caller?: { credential: Credential; tenant: Tenant }
    /** True once this request was counted toward its limits (so that an error after it does not count it twice). */
    limitCounted?: boolean
  }
}

/**
 * The contract's `POST /v1/token` 200 body as JSON text (openapi.yaml `TokenResponse`),
 * each value as `JSON.stringify` writes it (`expires_at` and the grant's numbers are
 * whole seconds and counts). Built as one string rather than serialised field by
 * field, with the token's JSON literal where its store made it (`CachedToken.tokenJson`):
 * a cache hit then neither escapes nor scans its ~300-character token (JSON.stringify
 * of it was a tenth of a hit's own work).
 */
export function tokenAnswerJson(token: CachedToken, grant: Pick<Grant, 'creators' | 'expireAfter' | 'maxWebsockets'>, cached: boolean): string {
  return `{"status_code":0,"data":{"token":${token.tokenJson ?? jsonString(token.token)},"expires_at":${Math.trunc(token.expiresAt)},"expire_after":${grant.expireAfter},"allowed_creators":${jsonStringArray(grant.creators)},"max_websockets":${grant.maxWebsockets},"cached":${cached}}}`
}

/** `Access-Control-Expose-Headers` of a token answer (the list is fixed: made once). */
const EXPOSE = EXPOSED_HEADERS.join(', ')

/**
 * The headers of a successful preflight for `POST /v1/token` from `origin` (Fetch standard, CORS protocol):
 * the method and request headers a token request sends, cached by the browser for 600 s
 * (`Access-Control-Max-Age`), and the exposed headers as on the answer itself.
 */
function preflightHeaders(origin: string): Record<string, string> {
  return {
    'access-control-allow-origin': origin,
    'access-control-expose-headers': EXPOSE,
    'access-control-allow-methods': 'POST',
    'access-control-allow-headers': 'Authorization, Content-Type',
    'access-control-max-age': '600',
    // RFC 9110 §8.6 has a 204 carry no Content-Length; @fastify/cors sends 0 all the same, for Safari, which waited
    // for a body without it (its source says). Kept, as the plugin did before this route answered preflights.
    'content-length': '0',
  }
}

/**
 * Who is calling, checked before the body is even read: CORS headers, credential,
 * tenant switch, browser origin. A hook with a callback, so that a caller whose
 * credential was accepted in the last minute passes without a promise.
 *
 * CORS is done here rather than by @fastify/cors (which answers the preflight and
 * every other route, by the same rule): an `Origin` of any tenant gets
 * `Access-Control-Allow-Origin` and the exposed headers, so that a browser can read
 * even a 401; a request whose origin is not its own tenant's is then refused (403).
 */
function identify(request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void {
  const { tenants } = request.server.broker
  const origin = request.headers.origin
  reply.header('vary', 'Origin')
  if (origin !== undefined && tenants.origins.has(origin)) {
    reply.header('access-control-allow-origin', origin)
    reply.header('access-control-expose-headers', EXPOSE)
  }
  reply.header('cache-control', 'no-store')
  if (repeatsAuthorization(request.raw.rawHeaders)) return done(unauthenticated(true, 'Expected one Authorization header.'))
  let credential: Credential | Promise<Credential>
  try {
    credential = tenants.authenticator.authenticate(request.headers.authorization)
  } catch (err) {
    return done(err as Error)
  }
  if (!(credential instanceof Promise)) return done(admit(request, credential))
  credential.then(
    (c) => done(admit(request, c)),
    (err: Error) => done(err),
  )
}

/** The tenant switch and origin check for an authenticated caller; the refusal, if any. */
function admit(request: FastifyRequest, credential: Credential): BrokerError | undefined {
  const tenant = request.server.broker.tenants.get(credential.tenantId)
  if (tenant === undefined) return unauthenticated(true)
  request.tokenLog = { tenant: tenant.id }
  if (!tenant.enabled) return new BrokerError('TENANT_DISABLED', `Tenant ${tenant.id} is disabled.`)
  const origin = request.headers.origin
  if (origin !== undefined && !tenant.cors.origins.includes(origin)) {
    return new BrokerError('ORIGIN_NOT_ALLOWED', 'This origin is not allowed for the tenant.')
  }
  request.caller = { credential, tenant }
  return undefined
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

/**
 * When a request arrived (`performance.now()`, ms), for a miss (TokenCache.tokenFor: a failed mint answered after that
 * is its answer too). Fastify times every reply of a route with an `onResponse` hook from its routing on (this route has
 * one); without that timing it is now, and only a mint still in flight is shared.
 */
const arrivedAt = (reply: FastifyReply): number => performance.now() - reply.elapsedTime

/** `POST /v1/token`: authenticate, apply the broker's limits, decide the grant, serve it from cache or mint. */
async function tokenRoute(app: FastifyInstance): Promise<void> {
  const { tokens, quota, metrics } = app.broker
  // The shared ledger's hash, read along with a hit's count on one Redis (fixed: named once here, not per request).
  const quotaAlong = quota.readAlongKey
  const limits = app.limits
  // On a Cluster the count cannot read it along (another slot): a hit reads the window with a command of its own,
  // sent in the same turn as the count and the lookup, so it waits for no extra round trip.
  const windowApart = quotaAlong !== undefined && !limits.readsAlong
  // Unauthenticated requests count under "unknown": a label set an attacker cannot grow.
  const count = (request: FastifyRequest, _reply: FastifyReply, done: () => void): void => {
    metrics.request(request.tokenLog?.tenant ?? 'unknown', request.outcome ?? 'INTERNAL')
    done()
  }
  // A body refused before the handler ran (not JSON, too large, wrong type) still counts, once.
  const countRefused = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (request.caller === undefined || request.limitCounted === true) return
    try {
      await limits.check(request, reply, request.caller.tenant, limitSubject(request, request.caller.credential))
    } catch {
      // Counted; its refusal does not replace the error already being answered.
    }
  }
  const options = {
    onRequest: identify,
    onSend: sendAtTurnEnd({ log: app.log }),
    onError: countRefused,
    onResponse: count,
    config: { cors: false },
  }

  /** The answer's body, headers and bookkeeping for a served token: at once, unless the quota's headers must first be read. */
  const answer = (request: FastifyRequest, reply: FastifyReply, tenantId: string, grant: Grant, served: ServedToken, windowRead = false): string | Promise<string> => {
    metrics.cache(tenantId, served.source === 'mint' ? 'miss' : served.source)
    request.tokenLog = served.upstreamMs === undefined ? { tenant: tenantId, cache: served.source } : { tenant: tenantId, cache: served.source, upstreamMs: Math.round(served.upstreamMs) }
    request.outcome = 'ok'
    reply.header('content-type', JSON_CONTENT_TYPE)
    const body = tokenAnswerJson(served.token, grant, served.source === 'hit')
    const upstreamHeaders = served.source === 'mint' ? quota.headers() : quota.headersForHit(windowRead)
    if (!(upstreamHeaders instanceof Promise)) {
      reply.headers(upstreamHeaders)
      return body
    }
    return upstreamHeaders.then((headers) => {
      reply.headers(headers)
      return body
    })
  }

  /** The rest of a request that waits for something: a shared store's count or lookup, a body refused after a shared count, a mint. */
  const later = async (
    request: FastifyRequest,
    reply: FastifyReply,
    tenant: Tenant,
    grant: Grant,
    rejected: string | undefined,
    counted: Promise<unknown> | undefined,
    looked: CachedToken | Promise<CachedToken | undefined> | null | undefined,
    window?: Promise<LedgerWindowFields | undefined>,
  ): Promise<string> => {
    if (counted !== undefined) await counted
    // A lookup was made (so no token was rejected): its answer, not tokenFor's own await.
    if (looked != null) {
      const hit = await looked
      const windowRead = window !== undefined && quota.absorbAlong(await window)
      return hitOrMint(request, reply, tenant, grant, hit, windowRead)
    }
    return answer(request, reply, tenant.id, grant, await tokens.tokenFor(tenant, grant, rejected, looked, arrivedAt(reply)))
  }

  /**
   * A lookup read along with the count (one Redis, one command): the count's refusal first, then the token it read,
   * and the quota ledger's window it read too (a hit's X-RateLimit-* are then the shared ledger's, not this replica's view).
   */
  const laterAlong = async (request: FastifyRequest, reply: FastifyReply, tenant: Tenant, grant: Grant, counted: Promise<WindowPair>, along: ReadAlongLookup): Promise<string> => {
    const pair = await counted
    const windowRead = quota.absorbAlong(pair.quota)
    const looked = along.open(pair.read)
    return hitOrMint(request, reply, tenant, grant, looked instanceof Promise ? await looked : looked, windowRead)
  }

  /** After a lookup (no rejected token): the token it found, else one from tokenFor (which does not read again). */
  const hitOrMint = (request: FastifyRequest, reply: FastifyReply, tenant: Tenant, grant: Grant, hit: CachedToken | undefined, windowRead = false): string | Promise<string> =>
    hit !== undefined
      ? answer(request, reply, tenant.id, grant, { token: hit, source: 'hit' }, windowRead)
      : tokens.tokenFor(tenant, grant, undefined, null, arrivedAt(reply)).then((served) => answer(request, reply, tenant.id, grant, served))

  // The CORS preflight (Fetch standard): the one route a browser sends a non-simple request to (JSON, a credential).
  // Answered here rather than by @fastify/cors, which answers a preflight for any path (an /admin/ path or an unknown
  // one included) from every tenant's origin: a preflight carries no credential, so every tenant's origins are
  // allowed; the request itself is then held to its own tenant's (`identify`).
  app.options('/v1/token', { config: { cors: false } }, (request, reply) => {
    const origin = request.headers.origin
    reply.header('vary', 'Origin')
    // Without an Origin it is no preflight, and there is no OPTIONS route to answer it.
    if (origin === undefined) throw new BrokerError('NOT_FOUND', 'No route OPTIONS /v1/token.')
    if (!app.broker.tenants.origins.has(origin)) throw new BrokerError('ORIGIN_NOT_ALLOWED', 'This origin is not allowed by any tenant.')
    // Also without Access-Control-Request-Method: an allowed origin's OPTIONS is answered as a preflight.
    reply.headers(preflightHeaders(origin))
    reply.code(204).send()
  })

  // Not an async function: a hit on the local stores is answered without a promise (Fastify sends a returned value at once).
  app.post('/v1/token', options, (request, reply) => {
    const { credential, tenant } = request.caller as NonNullable<FastifyRequest['caller']>
    request.limitCounted = true
    const subject = limitSubject(request, credential)
    // Every request is counted, valid or not; the body is judged first only so that the count can read the cached
    // token along. Nothing is awaited in between: the order of effects is the same.
    let body: TokenRequest
    let grant: Grant
    try {
      body = parseTokenRequest(request.body)
      grant = grantFor(tenant, credential, subjectOf(credential, body), body)
    } catch (err) {
      // The local store counts synchronously (its refusal is thrown); a shared one answers a promise.
      const counted = limits.check(request, reply, tenant, subject)
      if (counted === undefined) throw err
      // A refusal of the limits wins over one of the body.
      return counted.then(() => Promise.reject(err))
    }
    // The cached token is looked up while the limits are counted. On one Redis the count's own script reads it
    // (one command); on a Cluster both commands leave in one write, one round trip. Only a lookup: nothing is
    // minted before the limits have answered. A rejected token is dropped first (tokenFor), so not looked up here.
    const lookup = body.rejected_token === undefined
    const along = lookup && limits.readsAlong ? tokens.readAlong(tenant, grant) : undefined
    const counted = limits.check(request, reply, tenant, subject, along?.key, along === undefined ? undefined : quotaAlong)
    if (along !== undefined && counted !== undefined) return laterAlong(request, reply, tenant, grant, counted, along)
    // null: looked, nothing fresh cached; undefined: not looked.
    const looked = lookup ? (tokens.peek(tenant, grant) ?? null) : undefined
    if (counted === undefined && looked != null && !(looked instanceof Promise)) return answer(request, reply, tenant.id, grant, { token: looked, source: 'hit' })
    // A Cluster's hit: the ledger's window beside the count and the lookup, sent in the same turn.
    const window = windowApart && looked != null ? quota.readWindow() : undefined
    return later(request, reply, tenant, grant, body.rejected_token, counted, looked, window)
  })
}

export default fp(tokenRoute, { name: 'token-route', fastify: '5.x', dependencies: ['broker-services', 'broker-limits', 'graceful-close'] })
