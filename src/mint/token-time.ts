import { decodeJwt } from 'jose'
import type { CachedToken } from '../cache/token-store.js'
import { BrokerError } from '../errors.js'

/**
 * Seconds a cached token must still have to be served (CONTRACT "Caching and coalescing"):
 * `minRemaining`, never more than half its lifetime — `exp − iat` where the token carries
 * `iat` (`issuedAt` is then set), else the `expire_after` it was minted for.
 */
export function minRemainingFor(token: CachedToken, minRemaining: number): number {
  const lifetime = token.issuedAt !== null ? token.expiresAt - token.issuedAt : token.expireAfter
  return Math.min(minRemaining, lifetime / 2)
}

const unusable = (why: string): BrokerError => new BrokerError('UPSTREAM_ERROR', `tik.tools answered with an unusable token (${why}).`)

const isClaim = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v)

/**
 * Dates a freshly minted token on the broker's own clock (CONTRACT "Time is
 * the broker's own"): `expiresAt` is the receive time plus the token's own
 * lifetime `exp − iat`; without `iat`, its `exp`; without either, receive
 * time + `expire_after`. Never later than receive time + `expire_after`, so a
 * tik.tools clock that runs fast or slow changes nothing. `exp` and `iat` are
 * read with jose `decodeJwt`, unverified: it is tik.tools' token, not ours.
 *
 * @param receivedAtMs epoch ms when the answer arrived
 * @throws BrokerError `UPSTREAM_ERROR` when `exp` or `iat` is not an integer
 *   (`1e999`, a string), the lifetime is not positive, or the token is already
 *   expired on arrival: such a token is never cached.
 */
export function describeToken(token: string, expireAfter: number, receivedAtMs: number): CachedToken {
  let claims: Record<string, unknown> | undefined
  try {
    claims = decodeJwt(token)
  } catch {
    // not a JWT: dated by the lifetime asked for
  }
  const now = Math.floor(receivedAtMs / 1000)
  const { exp, iat } = claims ?? {}
  if (exp !== undefined && !isClaim(exp)) throw unusable('exp is not an integer')
  if (iat !== undefined && !isClaim(iat)) throw unusable('iat is not an integer')
  let lifetime = expireAfter
  if (exp !== undefined && iat !== undefined) lifetime = exp - iat
  else if (exp !== undefined) lifetime = exp - now
  if (lifetime <= 0) throw unusable(iat !== undefined ? 'it expires before it is issued' : 'it is already expired')
  // issuedAt only where the lifetime is the token's own (exp − iat): without iat, half of expire_after caps minRemaining.
  return { token, expiresAt: now + Math.min(lifetime, expireAfter), issuedAt: iat !== undefined ? now : null, expireAfter }
}
