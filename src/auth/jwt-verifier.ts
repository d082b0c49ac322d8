import { createPublicKey, type KeyObject } from 'node:crypto'
import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose'
import type { JwtAuthSettings } from '../config/tenant-schema.js'
import { claimValues } from './claims.js'
import { OidcDiscovery, type DiscoveryOptions } from './oidc-discovery.js'

type KeySource = Uint8Array | KeyObject | JWTVerifyGetKey

/** Verifies one tenant's user JWTs: signature, algorithm allow-list, issuer, audience, time claims. */
export interface JwtVerifier {
  verify(token: string): Promise<JWTPayload>
  /** True when keys come from a JWKS URL, which can be unreachable. */
  readonly remote: boolean
}

/**
 * Remote key sets are kept per URL (or per discovered issuer, see {@link keySetId}),
 * so a reload that keeps the URL keeps jose's cache and cooldown.
 */
export type JwksCache = Map<string, JWTVerifyGetKey>

/** How remote keys are fetched: `timeoutMs` bounds every fetch; the rest tunes OIDC discovery. */
export interface KeySetOptions extends DiscoveryOptions {
  timeoutMs?: number
}

/** The {@link JwksCache} entry a tenant's remote keys live under; undefined for a secret or PEM key. */
export function keySetId(jwt: JwtAuthSettings): string | undefined {
  if (jwt.secret !== undefined || jwt.publicKey !== undefined) return undefined
  return jwt.jwksUrl ?? `discovery:${jwt.issuer as string}`
}

function keySource(jwt: JwtAuthSettings, jwks: JwksCache, options: KeySetOptions): KeySource {
  if (jwt.secret !== undefined) return new TextEncoder().encode(jwt.secret)
  if (jwt.publicKey !== undefined) return createPublicKey(jwt.publicKey)
  const id = keySetId(jwt) as string
  let set = jwks.get(id)
  if (set === undefined) {
    const timeoutDuration = options.timeoutMs ?? 5000
    set =
      jwt.jwksUrl !== undefined
        ? createRemoteJWKSet(new URL(jwt.jwksUrl), { timeoutDuration, cooldownDuration: 30_000, cacheMaxAge: 600_000 })
        : new OidcDiscovery(jwt.issuer as string, options).getKey
    jwks.set(id, set)
  }
  return set
}

/** `audienceClaim` other than `aud`, and `authorizedParties` (azp): a jose claim error, so a 401. */
function checkParties(jwt: JwtAuthSettings, payload: JWTPayload): void {
  if (jwt.audience !== undefined && jwt.audienceClaim !== 'aud') {
    const wanted = Array.isArray(jwt.audience) ? jwt.audience : [jwt.audience]
    if (!claimValues(payload, jwt.audienceClaim).some((a) => wanted.includes(a))) {
      throw new errors.JWTClaimValidationFailed(`unexpected "${jwt.audienceClaim}" claim value`, payload, jwt.audienceClaim, 'check_failed')
    }
  }
  if (jwt.authorizedParties !== undefined && !(typeof payload.azp === 'string' && jwt.authorizedParties.includes(payload.azp))) {
    throw new errors.JWTClaimValidationFailed('unexpected "azp" claim value', payload, 'azp', 'check_failed')
  }
}

/** Builds the verifier for a tenant's `auth.jwt` section; throws on an unusable PEM key. */
export function createJwtVerifier(jwt: JwtAuthSettings, jwks: JwksCache, keySets: KeySetOptions = {}): JwtVerifier {
  const key = keySource(jwt, jwks, keySets)
  const options = {
    algorithms: jwt.algorithms,
    clockTolerance: jwt.clockToleranceSeconds,
    // A user token without `exp` would never expire (contract section 2).
    requiredClaims: ['exp'],
    ...(jwt.issuer !== undefined && { issuer: jwt.issuer }),
    // Another audience claim (Cognito's client_id) is checked below, after the signature.
    ...(jwt.audience !== undefined && jwt.audienceClaim === 'aud' && { audience: jwt.audience }),
  }
  return {
    remote: typeof key === 'function',
    async verify(token) {
      const { payload } = await jwtVerify(token, key as Parameters<typeof jwtVerify>[1], options)
      // jose takes any number; one past 2^53 (exp 1e300) is a token that never expires, so it is refused like no exp.
      for (const claim of ['exp', 'nbf', 'iat'] as const) {
        const v = payload[claim]
        if (v !== undefined && !Number.isSafeInteger(Math.trunc(v))) throw new errors.JWTClaimValidationFailed(`"${claim}" is not a sane time`, payload, claim, 'check_failed')
      }
      checkParties(jwt, payload)
      return payload
    },
  }
}
