import { createPublicKey, type KeyObject } from 'node:crypto'
import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose'
import type { JwtAuthSettings } from '../config/tenant-schema.js'

type KeySource = Uint8Array | KeyObject | JWTVerifyGetKey

/** Verifies one tenant's user JWTs: signature, algorithm allow-list, issuer, audience, time claims. */
export interface JwtVerifier {
  verify(token: string): Promise<JWTPayload>
  /** True when keys come from a JWKS URL, which can be unreachable. */
  readonly remote: boolean
}

/** Remote key sets are kept per URL, so a reload that keeps the URL keeps jose's cache and cooldown. */
export type JwksCache = Map<string, JWTVerifyGetKey>

function keySource(jwt: JwtAuthSettings, jwks: JwksCache, timeoutMs: number): KeySource {
  if (jwt.secret !== undefined) return new TextEncoder().encode(jwt.secret)
  if (jwt.publicKey !== undefined) return createPublicKey(jwt.publicKey)
  const url = jwt.jwksUrl as string
  let set = jwks.get(url)
  if (set === undefined) {
    set = createRemoteJWKSet(new URL(url), { timeoutDuration: timeoutMs, cooldownDuration: 30_000, cacheMaxAge: 600_000 })
    jwks.set(url, set)
  }
  return set
}

/** Builds the verifier for a tenant's `auth.jwt` section; throws on an unusable PEM key. */
export function createJwtVerifier(jwt: JwtAuthSettings, jwks: JwksCache, timeoutMs = 5000): JwtVerifier {
  const key = keySource(jwt, jwks, timeoutMs)
  const options = {
    algorithms: jwt.algorithms,
    clockTolerance: jwt.clockToleranceSeconds,
    // A user token without `exp` would never expire (contract section 2).
    requiredClaims: ['exp'],
    ...(jwt.issuer !== undefined && { issuer: jwt.issuer }),
    ...(jwt.audience !== undefined && { audience: jwt.audience }),
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
      return payload
    },
  }
}
