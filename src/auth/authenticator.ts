import { decodeJwt, decodeProtectedHeader, errors, type JWTPayload } from 'jose'
import { LRUCache } from 'lru-cache'
import type { Tenant } from '../config/tenant-schema.js'
import { BrokerError } from '../errors.js'
import { ApiKeyIndex } from './api-keys.js'
import { claimAt, claimValues } from './claims.js'
import { createJwtVerifier, type JwksCache, type JwtVerifier, type KeySetOptions } from './jwt-verifier.js'
import { DiscoveryUnavailableError } from './oidc-discovery.js'

/** Longest credential accepted; anything larger is refused before any parsing. */
export const MAX_CREDENTIAL_BYTES = 8192
/** Header parameters that would let a token choose its own key: never honoured. */
const KEY_CHOOSING_HEADERS = ['jku', 'jwk', 'x5u', 'x5c'] as const

/** Who is calling: the tenant, and for a user JWT the subject and the verified claims. */
export type Credential =
  | { mode: 'jwt'; tenantId: string; subject: string; claims: JWTPayload }
  | { mode: 'apiKey'; tenantId: string }

interface JwtTenant {
  id: string
  issuer: string | undefined
  audience: string[] | undefined
  audienceClaim: string
  subjectClaim: string
  verifier: JwtVerifier
}

/** The contract's 401; `presented` says whether the RFC 6750 challenge carries `error="invalid_token"`. */
export function unauthenticated(presented: boolean, message = 'A valid credential is required.'): BrokerError {
  const challenge = presented ? 'Bearer realm="tiktools-broker", error="invalid_token"' : 'Bearer realm="tiktools-broker"'
  return new BrokerError('UNAUTHENTICATED', message, { headers: { 'www-authenticate': challenge } })
}

/**
 * True when a request carries `Authorization` more than once (`rawHeaders`: Node's flat list of
 * names and values as sent). RFC 9110 §5.3 lets a field repeat only where its value is a list, and
 * `Authorization` (§11.6.2) is not one. Node keeps the first and drops the rest, so a proxy in
 * front that read another would disagree with the broker about who is calling: such a request is
 * refused (401) instead of being judged by one of its credentials.
 */
export function repeatsAuthorization(rawHeaders: readonly string[]): boolean {
  let seen = false
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string
    if (name.length === 13 && name.toLowerCase() === 'authorization') {
      if (seen) return true
      seen = true
    }
  }
  return false
}

/** A JWKS that could not be fetched or read (network, timeout, non-200, not a key set), as opposed to a bad token. */
function keySetUnavailable(err: unknown): boolean {
  if (!(err instanceof errors.JOSEError)) return true
  return err.code === 'ERR_JWKS_TIMEOUT' || err.code === 'ERR_JWKS_INVALID' || err.code === 'ERR_JOSE_GENERIC'
}

function audiences(aud: string | string[] | undefined): string[] {
  return aud === undefined ? [] : Array.isArray(aud) ? aud : [aud]
}

/**
 * Turns an `Authorization` header into a {@link Credential}, or throws the
 * contract's 401. Built from one set of tenants; rebuilt on reload.
 */
export class Authenticator {
  readonly #apiKeys: ApiKeyIndex
  readonly #jwtTenants: JwtTenant[]
  /**
   * Credentials accepted in the last minute (at most until a JWT's `exp`), by the exact
   * `Authorization` header they came in: a client
   * polling with one JWT is not re-verified, a backend's API key not re-hashed, each time.
   * Dropped with this object on reload, so a removed key or tenant stops working then.
   */
  readonly #verified = new LRUCache<string, Credential>({ max: 10_000, ttl: 60_000 })

  constructor(tenants: readonly Tenant[], jwks: JwksCache = new Map(), keySets: KeySetOptions = {}) {
    this.#apiKeys = new ApiKeyIndex(tenants)
    this.#jwtTenants = tenants.flatMap((t) => {
      const jwt = t.auth.jwt
      if (jwt === undefined) return []
      return [
        {
          id: t.id,
          issuer: jwt.issuer,
          audience: jwt.audience === undefined ? undefined : audiences(jwt.audience),
          audienceClaim: jwt.audienceClaim,
          subjectClaim: jwt.subjectClaim,
          verifier: createJwtVerifier(jwt, jwks, keySets),
        },
      ]
    })
  }

  /**
   * Authenticates an `Authorization` header value. A user JWT verified in the
   * last minute is answered synchronously (the cache-hit path awaits nothing);
   * anything else answers a promise. Either way a refusal is the contract's 401,
   * thrown or rejected.
   */
  authenticate(header: string | undefined): Credential | Promise<Credential> {
    if (header === undefined || header === '') throw unauthenticated(false)
    // The exact header of a credential accepted in the last minute first: the hot path then parses,
    // hashes and verifies nothing (only headers that passed every check below are remembered).
    const known = this.#verified.get(header)
    if (known !== undefined) return known

    if (header.length > MAX_CREDENTIAL_BYTES + 7) throw unauthenticated(true, 'The credential is too large.')
    const match = /^Bearer +(\S+) *$/i.exec(header)
    if (match === null) throw unauthenticated(true, 'Expected an Authorization: Bearer credential.')
    const credential = match[1] as string
    if (Buffer.byteLength(credential) > MAX_CREDENTIAL_BYTES) throw unauthenticated(true, 'The credential is too large.')
    return this.#authenticateAnew(credential, header)
  }

  async #authenticateAnew(credential: string, header: string): Promise<Credential> {
    const apiKeyTenant = this.#apiKeys.match(credential)
    if (apiKeyTenant !== undefined) {
      const known: Credential = { mode: 'apiKey', tenantId: apiKeyTenant }
      this.#verified.set(header, known)
      return known
    }
    const verified = await this.#verifyJwt(credential)
    const exp = typeof verified.claims.exp === 'number' ? verified.claims.exp * 1000 - Date.now() : 60_000
    if (exp > 0) this.#verified.set(header, verified, { ttl: Math.min(exp, 60_000) })
    return verified
  }

  async #verifyJwt(token: string): Promise<Credential & { mode: 'jwt' }> {
    let claims: JWTPayload
    try {
      const header = decodeProtectedHeader(token)
      if (KEY_CHOOSING_HEADERS.some((h) => h in header)) throw new Error('key-choosing header')
      claims = decodeJwt(token)
    } catch {
      throw unauthenticated(true)
    }
    const tenant = this.#tenantFor(claims)
    if (tenant === undefined) throw unauthenticated(true)
    let payload: JWTPayload
    try {
      payload = await tenant.verifier.verify(token)
    } catch (err) {
      // The identity provider being down is not the user's fault: retry, don't sign out.
      if (tenant.verifier.remote && keySetUnavailable(err)) {
        const retryAfter = err instanceof DiscoveryUnavailableError ? err.retryAfterSeconds : 5
        throw new BrokerError('UPSTREAM_UNAVAILABLE', "The identity provider's key set (JWKS) is unavailable; retry shortly.", {
          headers: { 'retry-after': retryAfter },
        })
      }
      throw unauthenticated(true)
    }
    const sub = claimAt(payload, tenant.subjectClaim)
    const subject = typeof sub === 'string' ? sub : typeof sub === 'number' ? String(sub) : ''
    if (subject === '' || subject.length > 256) throw unauthenticated(true, 'The token has no usable subject.')
    return { mode: 'jwt', tenantId: tenant.id, subject, claims: payload }
  }

  /** The one tenant whose issuer (and, where issuers are shared, audience) matches the unverified claims. */
  #tenantFor(claims: JWTPayload): JwtTenant | undefined {
    let candidates = this.#jwtTenants.filter((t) => t.issuer === undefined || t.issuer === claims.iss)
    if (candidates.length > 1) {
      const exact = candidates.filter((t) => t.issuer !== undefined)
      if (exact.length > 0) candidates = exact
    }
    if (candidates.length > 1) {
      candidates = candidates.filter((t) => {
        const aud = claimValues(claims, t.audienceClaim)
        return t.audience !== undefined && t.audience.some((a) => aud.includes(a))
      })
    }
    return candidates.length === 1 ? candidates[0] : undefined
  }
}
