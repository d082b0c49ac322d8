/**
 * What every bench process agrees on: credentials, tenants, the request
 * bodies. The orchestrator (`run.ts`) and the processes it starts import this.
 */
import { once } from 'node:events'
import { createServer } from 'node:http'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import { hashApiKey } from '../src/auth/api-keys.js'
import type { Config } from '../src/config/index.js'
import { tenantSchema, type Tenant } from '../src/config/tenant-schema.js'

export const UPSTREAM_KEY = 'bench-tiktools-api-key-0123456789'
export const USER_SECRET = 'bench-user-jwt-secret-0123456789abcdef'
export const BROKER_API_KEY = 'bench-broker-api-key-0123456789abcdef'
export const HS_ISSUER = 'https://hs.bench.example/'
export const ES_ISSUER = 'https://es.bench.example/'
export const ORIGIN = 'https://app.bench.example'
/** No limit of the broker's own may refuse a bench request. */
const UNLIMITED = { perSubjectPerMinute: 1_000_000_000, perTenantPerMinute: 1_000_000_000 }

/** The body a browser sends for a token: one creator. */
export const HIT_BODY = JSON.stringify({ allowed_creators: ['streamer1'] })
/** The body an app backend sends with a broker API key. */
export const API_KEY_BODY = JSON.stringify({ allowed_creators: ['streamer1'], subject: 'backend-user-1' })

/** Tenant `hs` (HS256 user JWTs and the broker API key) and tenant `es` (ES256 user JWTs from a JWKS). */
export function benchTenants(jwksUrl: string): Tenant[] {
  const common = { cors: { origins: [ORIGIN] }, creators: { allowed: ['streamer1', 'streamer2'] }, limits: UNLIMITED }
  return [
    { id: 'hs', ...tenantSchema.parse({ ...common, auth: { jwt: { issuer: HS_ISSUER, secret: USER_SECRET }, apiKeys: [hashApiKey(BROKER_API_KEY)] } }) },
    { id: 'es', ...tenantSchema.parse({ ...common, auth: { jwt: { issuer: ES_ISSUER, jwksUrl, algorithms: ['ES256'] } } }) },
  ]
}

/** The broker's configuration for a bench target. */
export function benchConfig(upstreamUrl: string, jwksUrl: string, redisUrl?: string): Config {
  return {
    upstream: { url: upstreamUrl, apiKey: UPSTREAM_KEY, timeoutMs: 5000 },
    server: { host: '127.0.0.1', port: 0 },
    tenantsFile: undefined,
    tenants: benchTenants(jwksUrl),
    redisUrl,
    cacheEncryptionKey: undefined,
    adminToken: undefined,
    logLevel: 'info',
  }
}

/** The users a bench signs in as: a JWKS served on loopback for tenant `es`, and a user JWT of each tenant. */
export interface BenchIdentities {
  jwksUrl: string
  /** A user JWT of tenant `hs` (HS256, valid 2 h). */
  hsJwt: string
  /** A user JWT of tenant `es` (ES256, its key in the JWKS, valid 2 h). */
  esJwt: string
  close(): void
}

/** Serves a fresh ES256 key set on `127.0.0.1:0` and signs one user JWT for each tenant. */
export async function startIdentities(): Promise<BenchIdentities> {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true })
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'bench-1', alg: 'ES256', use: 'sig' }] })
  const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(jwks))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const hsJwt = await new SignJWT({ sub: 'bench-user-hs' })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer(HS_ISSUER)
    .setIssuedAt()
    .setExpirationTime('2h')
    .sign(new TextEncoder().encode(USER_SECRET))
  const esJwt = await new SignJWT({ sub: 'bench-user-es' })
    .setProtectedHeader({ alg: 'ES256', kid: 'bench-1' })
    .setIssuer(ES_ISSUER)
    .setIssuedAt()
    .setExpirationTime('2h')
    .sign(privateKey)
  return {
    jwksUrl: `http://127.0.0.1:${(server.address() as { port: number }).port}/jwks.json`,
    hsJwt,
    esJwt,
    close: () => server.close(),
  }
}

/** A hit row's request: the headers and body a browser (user JWT, `Origin`) or an app backend (broker API key) sends. */
export function hitRequest(credential: 'hs256' | 'es256' | 'apikey', identities: BenchIdentities): { headers: Record<string, string>; body: string } {
  if (credential === 'apikey') return { headers: { 'content-type': 'application/json', authorization: `Bearer ${BROKER_API_KEY}` }, body: API_KEY_BODY }
  const jwt = credential === 'hs256' ? identities.hsJwt : identities.esJwt
  return { headers: { 'content-type': 'application/json', authorization: `Bearer ${jwt}`, origin: ORIGIN }, body: HIT_BODY }
}
