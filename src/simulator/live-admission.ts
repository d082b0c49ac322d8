import { acceptsApiKey } from './options.js'
import type { ResolvedOptions } from './options.js'
import { SimulatorTokenError, normalizeCreator, verifySimulatorToken } from './token.js'

/** The WebSocket close codes of tik.tools that the simulator uses. */
export const SIM_CLOSE = {
  BAD_REQUEST: 4000,
  INVALID_TOKEN: 4003,
  CREATOR_NOT_ALLOWED: 4004,
  TOO_MANY_CONNECTIONS: 4005,
} as const

/** One of the {@link SIM_CLOSE} codes. */
export type SimCloseCode = (typeof SIM_CLOSE)[keyof typeof SIM_CLOSE]

/** A socket's token: what bounds its lifetime and its siblings. */
export interface SocketTicket {
  jti: string
  maxSockets: number
  /** Token expiry in ms. */
  expiresAtMs: number
}

/** The verdict on a connection's query string. Sockets opened with an apiKey carry no ticket. */
export type Admission =
  | { ok: true; uniqueId: string; ticket?: SocketTicket }
  | { ok: false; code: SimCloseCode; reason: string }

/**
 * Checks `?uniqueId=&jwtKey=` (or `&apiKey=`): uniqueId present, token valid
 * and unexpired, creator allowed. The socket count is the caller's to check,
 * since it must happen in the same tick as the registration.
 */
export async function admitConnection(params: URLSearchParams, options: ResolvedOptions): Promise<Admission> {
  const uniqueId = normalizeCreator(params.get('uniqueId') ?? '')
  if (uniqueId === '') return { ok: false, code: SIM_CLOSE.BAD_REQUEST, reason: 'missing uniqueId' }

  const jwtKey = params.get('jwtKey')
  if (!jwtKey) {
    const apiKey = params.get('apiKey')
    if (acceptsApiKey(options, apiKey)) return { ok: true, uniqueId }
    return { ok: false, code: SIM_CLOSE.INVALID_TOKEN, reason: apiKey ? 'invalid api key' : 'missing jwtKey' }
  }

  let claims
  try {
    claims = await verifySimulatorToken(jwtKey, options.secret, options.now())
  } catch (err) {
    const reason = err instanceof SimulatorTokenError && err.reason === 'expired' ? 'token expired' : 'invalid token'
    return { ok: false, code: SIM_CLOSE.INVALID_TOKEN, reason }
  }
  if (claims.allowed_creators && !claims.allowed_creators.includes(uniqueId)) {
    return { ok: false, code: SIM_CLOSE.CREATOR_NOT_ALLOWED, reason: 'creator not allowed' }
  }
  return {
    ok: true,
    uniqueId,
    ticket: { jti: claims.jti, maxSockets: claims.max_websockets, expiresAtMs: claims.exp * 1000 },
  }
}
