/**
 * The soak's traffic: what each kind of request sends, what answer it must
 * get, and how a token answer is checked against the grant its subject asked for.
 */
import { SignJWT, jwtVerify } from 'jose'
import { request } from 'undici'

export const ISSUER = 'https://soak.test/'
export const USER_SECRET = 'soak-user-jwt-secret-0123456789abcdef'
export const ORIGIN = 'https://app.soak.test'
export const CREATORS = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8']

/** The tenants file the replicas run. */
export const TENANTS_YAML = `tenants:
  soak:
    auth: { jwt: { issuer: "${ISSUER}", secret: "\${SOAK_USER_SECRET}" } }
    cors: { origins: ["${ORIGIN}"] }
    creators: { allowed: [${CREATORS.join(', ')}] }
    token: { expireAfter: { default: 600, max: 3600 }, maxWebsockets: { default: 1, max: 3 } }
    limits: { perSubjectPerMinute: 10000, perTenantPerMinute: 1000000 }
`

/** What a subject asks for; the token it gets must grant exactly this. */
export interface Wanted {
  creators: string[]
  maxWebsockets: number
  expireAfter: number
}

export function wantedFor(n: number): Wanted {
  const creators = [...new Set([CREATORS[n % CREATORS.length], CREATORS[(n * 7 + 3) % CREATORS.length]])].sort() as string[]
  return { creators, maxWebsockets: 1 + (n % 3), expireAfter: 600 + 60 * (n % 4) }
}

export const keyOf = (subject: string, w: Wanted): string => `${subject}|${w.creators.join(',')}|${w.maxWebsockets}|${w.expireAfter}`

const secret = new TextEncoder().encode(USER_SECRET)
const jwtCache = new Map<string, string>()

/** A user JWT for `subject` (cached: a real client reuses its token). */
export async function userJwt(subject: string, options: { exp?: number | null; secret?: string } = {}): Promise<string> {
  const cacheable = options.exp === undefined && options.secret === undefined
  const known = cacheable ? jwtCache.get(subject) : undefined
  if (known !== undefined) return known
  let jwt = new SignJWT({ sub: subject }).setProtectedHeader({ alg: 'HS256' }).setIssuer(ISSUER).setIssuedAt()
  if (options.exp !== null) jwt = jwt.setExpirationTime(options.exp ?? '30m')
  const token = await jwt.sign(options.secret === undefined ? secret : new TextEncoder().encode(options.secret))
  if (cacheable) jwtCache.set(subject, token)
  return token
}

export interface Sent {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: any
}

/** One request to a replica, bounded at 10 s; a transport failure is status 0. */
export async function send(
  base: string,
  path: string,
  headers: Record<string, string>,
  body: string | undefined,
): Promise<Sent> {
  try {
    const res = await request(`${base}${path}`, {
      method: 'POST',
      headers,
      body,
      headersTimeout: 10_000,
      bodyTimeout: 10_000,
    })
    const text = await res.body.text()
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      parsed = text
    }
    return { status: res.statusCode, headers: res.headers as Sent['headers'], body: parsed }
  } catch (err) {
    return { status: 0, headers: {}, body: String((err as Error).message) }
  }
}

/** A request that must be refused: how to send it, and the contract answer it must get. */
export interface BadKind {
  name: string
  status: number
  code: string
  build(): Promise<{ path: string; headers: Record<string, string>; body?: string }>
}

const json = { 'content-type': 'application/json' }
const bearer = async (sub: string) => ({ authorization: `Bearer ${await userJwt(sub)}`, ...json })

export const BAD_KINDS: BadKind[] = [
  { name: 'unknown field', status: 400, code: 'BAD_REQUEST', build: async () => ({ path: '/v1/token', headers: await bearer('bad-1'), body: '{"colour":"blue"}' }) },
  { name: 'bad creator name', status: 400, code: 'BAD_REQUEST', build: async () => ({ path: '/v1/token', headers: await bearer('bad-2'), body: '{"allowed_creators":["no spaces!"]}' }) },
  { name: 'not JSON', status: 400, code: 'BAD_REQUEST', build: async () => ({ path: '/v1/token', headers: await bearer('bad-3'), body: '{"allowed_creators":[' }) },
  { name: 'creator not allowed', status: 403, code: 'CREATOR_NOT_ALLOWED', build: async () => ({ path: '/v1/token', headers: await bearer('bad-4'), body: '{"allowed_creators":["someone_else"]}' }) },
  { name: 'text/plain body', status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', build: async () => ({ path: '/v1/token', headers: { ...(await bearer('bad-5')), 'content-type': 'text/plain' }, body: 'hello' }) },
  { name: 'body over 16 KiB', status: 413, code: 'PAYLOAD_TOO_LARGE', build: async () => ({ path: '/v1/token', headers: await bearer('bad-6'), body: `{"subject":"${'x'.repeat(17 * 1024)}"}` }) },
  { name: 'no credential', status: 401, code: 'UNAUTHENTICATED', build: async () => ({ path: '/v1/token', headers: json, body: '{}' }) },
  { name: 'JWT without exp', status: 401, code: 'UNAUTHENTICATED', build: async () => ({ path: '/v1/token', headers: { authorization: `Bearer ${await userJwt('bad-7', { exp: null })}`, ...json }, body: '{}' }) },
  { name: 'expired JWT', status: 401, code: 'UNAUTHENTICATED', build: async () => ({ path: '/v1/token', headers: { authorization: `Bearer ${await userJwt('bad-8', { exp: Math.floor(Date.now() / 1000) - 600 })}`, ...json }, body: '{}' }) },
  { name: 'JWT of another secret', status: 401, code: 'UNAUTHENTICATED', build: async () => ({ path: '/v1/token', headers: { authorization: `Bearer ${await userJwt('bad-9', { secret: 'another-secret-0123456789abcdef012' })}`, ...json }, body: '{}' }) },
  { name: '20 KiB credential from a browser', status: 401, code: 'UNAUTHENTICATED', build: async () => ({ path: '/v1/token', headers: { authorization: `Bearer ${'A'.repeat(20 * 1024)}`, origin: ORIGIN, ...json }, body: '{}' }) },
  { name: 'origin not allowed', status: 403, code: 'ORIGIN_NOT_ALLOWED', build: async () => ({ path: '/v1/token', headers: { ...(await bearer('bad-10')), origin: 'https://evil.example' }, body: '{}' }) },
  { name: 'broken URL encoding', status: 400, code: 'BAD_REQUEST', build: async () => ({ path: '/v1/token%E0%A4%A', headers: json, body: '{}' }) },
]

/** True for the contract's error body, exactly its three fields. */
export function isContractError(body: unknown, status: number): boolean {
  if (typeof body !== 'object' || body === null) return false
  const b = body as Record<string, unknown>
  return Object.keys(b).length === 3 && b.status_code === status && typeof b.code === 'string' && typeof b.message === 'string'
}

/**
 * Why a 200 is wrong for `wanted`, or undefined when it is right: the
 * answer's fields, and the upstream token's own verified claims (the
 * simulator signs them), must be exactly the grant asked for.
 */
export async function tokenProblem(body: any, wanted: Wanted, simSecret: Uint8Array, nowMs: number): Promise<string | undefined> {
  const data = body?.data
  if (body?.status_code !== 0 || typeof data?.token !== 'string') return 'no token in a 200'
  if (JSON.stringify(data.allowed_creators) !== JSON.stringify(wanted.creators)) return 'answer names other creators'
  if (data.max_websockets !== wanted.maxWebsockets || data.expire_after !== wanted.expireAfter) return 'answer grants other limits'
  if (!(data.expires_at * 1000 > nowMs)) return 'answer already expired'
  let claims
  try {
    claims = (await jwtVerify(data.token, simSecret, { algorithms: ['HS256'] })).payload
  } catch (err) {
    return `token does not verify (${(err as Error).message})`
  }
  const creators = Array.isArray(claims.allowed_creators) ? [...(claims.allowed_creators as string[])].sort() : null
  if (JSON.stringify(creators) !== JSON.stringify(wanted.creators)) return 'token grants other creators'
  if (claims.max_websockets !== wanted.maxWebsockets) return 'token grants other sockets'
  if (typeof claims.exp !== 'number' || typeof claims.iat !== 'number' || claims.exp - claims.iat !== wanted.expireAfter) return 'token lives otherwise'
  return undefined
}
