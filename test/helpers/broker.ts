import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { SignJWT, type JWTPayload } from 'jose'
import type { Test } from 'tap'
import { buildApp, type AppDeps } from '../../src/app.js'
import type { Config } from '../../src/config/index.js'
import { tenantSchema, type Tenant, type TenantInput } from '../../src/config/tenant-schema.js'
import { createLogger } from '../../src/logger.js'
import { startSimulator, type Simulator } from '../../src/simulator/index.js'
import type { SimulatorOptions } from '../../src/simulator/index.js'

export const API_KEY = 'tt-live-api-key-1234567890'
export const USER_SECRET = 'user-jwt-secret-for-tests-0123456789'
export const ISSUER = 'https://auth.test.example/'

/** Every secret any test handed to or got from a broker: none may ever appear in a log line. */
const secrets = new Set<string>([API_KEY])
export function rememberSecret(s: string): void {
  secrets.add(s)
}

/** A tenant from the file shape, validated the way the tenants file is. */
export function tenant(id: string, input: TenantInput): Tenant {
  return { id, ...tenantSchema.parse(input) }
}

/** A tenant `acme` verifying HS256 user JWTs with {@link USER_SECRET}, creators a1..a3. */
export function acme(overrides: Partial<TenantInput> = {}): Tenant {
  return tenant('acme', {
    auth: { jwt: { issuer: ISSUER, secret: USER_SECRET } },
    cors: { origins: ['https://app.acme.example'] },
    creators: { allowed: ['a1', 'a2', 'a3'] },
    ...overrides,
  })
}

export function configFor(upstreamUrl: string, tenants: Tenant[], extra: Partial<Config> = {}): Config {
  return {
    upstream: { url: upstreamUrl, apiKey: API_KEY, timeoutMs: 1000 },
    server: { host: '127.0.0.1', port: 0 },
    tenantsFile: undefined,
    tenants,
    redisUrl: undefined,
    cacheEncryptionKey: undefined,
    adminToken: undefined,
    logLevel: 'debug',
    ...extra,
  }
}

/** Signs a user JWT for the test tenants (HS256, {@link USER_SECRET}) and remembers it as a secret. */
export async function userJwt(
  sub: string | undefined,
  claims: JWTPayload = {},
  opts: { secret?: string; issuer?: string; audience?: string; expiresIn?: string | number } = {},
): Promise<string> {
  let jwt = new SignJWT({ ...claims, ...(sub !== undefined && { sub }) })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setIssuer(opts.issuer ?? ISSUER)
    .setExpirationTime(opts.expiresIn ?? '10m')
  if (opts.audience !== undefined) jwt = jwt.setAudience(opts.audience)
  const token = await jwt.sign(new TextEncoder().encode(opts.secret ?? USER_SECRET))
  rememberSecret(token)
  return token
}

export interface TestBroker {
  app: FastifyInstance
  sim: Simulator
  logs: string[]
  /** POST /v1/token with a Bearer credential and a JSON body; remembers minted tokens as secrets. */
  token(credential: string | undefined, body?: unknown, headers?: Record<string, string>): Promise<TokenAnswer>
}

export interface TokenAnswer {
  status: number
  headers: Record<string, string | string[] | number | undefined>
  body: any
}

/**
 * A ready broker in front of a real simulator on 127.0.0.1:0, its logs
 * captured and, at teardown, checked for every secret the tests used.
 */
export async function buildBroker(
  t: Test,
  options: { tenants?: Tenant[]; sim?: SimulatorOptions; config?: Partial<Config>; deps?: AppDeps; upstreamTimeoutMs?: number } = {},
): Promise<TestBroker> {
  const sim = await startSimulator({ apiKeys: [API_KEY], ...options.sim })
  const logs: string[] = []
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logs.push(String(chunk))
      cb()
    },
  })
  const config = configFor(sim.url, options.tenants ?? [acme()], options.config)
  if (options.upstreamTimeoutMs !== undefined) config.upstream.timeoutMs = options.upstreamTimeoutMs
  const app = await buildApp(config, { logger: createLogger('debug', sink), ...options.deps })
  await app.ready()
  t.teardown(async () => {
    await app.close()
    await sim.close()
    const text = logs.join('')
    for (const s of secrets) {
      if (text.includes(s)) t.fail(`a log line contains a secret (${s.slice(0, 12)}…)`)
    }
  })
  return {
    app,
    sim,
    logs,
    async token(credential, body, headers = {}) {
      const res = await app.inject({
        method: 'POST',
        url: '/v1/token',
        headers: {
          ...(credential !== undefined && { authorization: `Bearer ${credential}` }),
          ...(body !== undefined && { 'content-type': 'application/json' }),
          ...headers,
        },
        ...(body !== undefined && { payload: typeof body === 'string' ? body : JSON.stringify(body) }),
      })
      const parsed = res.headers['content-type']?.toString().includes('json') ? res.json() : res.body
      if (typeof parsed?.data?.token === 'string') rememberSecret(parsed.data.token)
      return { status: res.statusCode, headers: res.headers, body: parsed }
    },
  }
}
