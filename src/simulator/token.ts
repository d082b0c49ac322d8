import { randomUUID } from 'node:crypto'
import { SignJWT, errors, jwtVerify } from 'jose'
import type { JWTPayload } from 'jose'

/** What a simulator token grants, as the mint body asked for it (defaults applied). */
export interface MintGrant {
  expire_after: number
  max_websockets: number
  /** Normalised creator names; absent means any creator. */
  allowed_creators?: string[]
}

/** The claims of a verified simulator token. */
export interface SimulatorClaims {
  jti: string
  iat: number
  exp: number
  max_websockets: number
  allowed_creators?: string[]
}

/** Why a token was refused: the WebSocket side closes with 4003 in both cases. */
export class SimulatorTokenError extends Error {
  override readonly name = 'SimulatorTokenError'
  constructor(readonly reason: 'expired' | 'invalid', message: string) {
    super(message)
  }
}

/** A TikTok username as tik.tools compares it: no leading '@', lower case. */
export function normalizeCreator(name: string): string {
  return name.trim().replace(/^@/, '').toLowerCase()
}

/** Signs an HS256 JWT like tik.tools issues: `iat`, `exp = iat + expire_after`, a random `jti`. */
export async function mintSimulatorToken(grant: MintGrant, secret: string, nowMs: number): Promise<string> {
  const iat = Math.floor(nowMs / 1000)
  const claims: JWTPayload = { max_websockets: grant.max_websockets }
  if (grant.allowed_creators !== undefined) claims.allowed_creators = grant.allowed_creators
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt(iat)
    .setExpirationTime(iat + grant.expire_after)
    .setJti(randomUUID())
    .sign(keyOf(secret))
}

/**
 * Verifies a simulator token's signature, expiry (against `now`, in ms) and claim shapes.
 *
 * @throws {SimulatorTokenError} with `reason: 'expired'` or `'invalid'`
 * @example
 * const claims = await verifySimulatorToken(token, sim.secret)
 * claims.max_websockets // 1
 */
export async function verifySimulatorToken(token: string, secret: string, now: number = Date.now()): Promise<SimulatorClaims> {
  let payload: JWTPayload
  try {
    ;({ payload } = await jwtVerify(token, keyOf(secret), {
      algorithms: ['HS256'],
      currentDate: new Date(now),
      requiredClaims: ['iat', 'exp', 'jti'],
    }))
  } catch (err) {
    if (err instanceof errors.JWTExpired) throw new SimulatorTokenError('expired', 'token expired')
    throw new SimulatorTokenError('invalid', 'invalid token')
  }
  return claimsOf(payload)
}

function claimsOf(payload: JWTPayload): SimulatorClaims {
  const { jti, iat, exp, max_websockets: maxSockets, allowed_creators: creators } = payload
  if (typeof jti !== 'string' || typeof iat !== 'number' || typeof exp !== 'number') {
    throw new SimulatorTokenError('invalid', 'invalid token claims')
  }
  if (typeof maxSockets !== 'number' || !Number.isInteger(maxSockets) || maxSockets < 1) {
    throw new SimulatorTokenError('invalid', 'invalid max_websockets claim')
  }
  const claims: SimulatorClaims = { jti, iat, exp, max_websockets: maxSockets }
  if (creators !== undefined) {
    if (!Array.isArray(creators) || !creators.every((c): c is string => typeof c === 'string')) {
      throw new SimulatorTokenError('invalid', 'invalid allowed_creators claim')
    }
    claims.allowed_creators = creators
  }
  return claims
}

function keyOf(secret: string): Uint8Array {
  return new TextEncoder().encode(secret)
}
