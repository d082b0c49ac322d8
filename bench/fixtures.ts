/**
 * What every bench process agrees on: credentials, tenants, the request
 * bodies. The orchestrator (`run.ts`) and the processes it starts import this.
 */
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
