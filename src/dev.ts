import { randomBytes } from 'node:crypto'
import { realpathSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import { SignJWT } from 'jose'
import { buildApp } from './app.js'
import { hashApiKey } from './auth/api-keys.js'
import type { Config } from './config/index.js'
import { tenantSchema, type Tenant } from './config/tenant-schema.js'
import demo from './demo/index.js'
import { createLogger } from './logger.js'
import { startSimulator, type Simulator } from './simulator/index.js'

/** The demo tenant's user-JWT issuer and the creators the simulator streams. */
export const DEMO_ISSUER = 'https://demo.tiktools-broker.local/'
export const DEMO_CREATORS = ['demo_creator', 'streamer1', 'streamer2']

/** Where and how {@link startDev} runs; every field has a default. */
export interface DevOptions {
  /** Broker listen address, default `'127.0.0.1'`. */
  host?: string
  /** Broker port, default 8080; `0` picks a free one. */
  port?: number
  /** Simulator port, default 8090; `0` picks a free one. */
  simPort?: number
  adminToken?: string
  logLevel?: Config['logLevel']
  /** The simulator's event cadence in ms (default 1000); tests speed it up. */
  eventIntervalMs?: number
}

/** A running dev stack: the simulator, the broker with its demo tenant, and the `/demo` page. */
export interface DevServer {
  /** The broker's base URL, e.g. `http://127.0.0.1:8080`. */
  url: string
  app: FastifyInstance
  sim: Simulator
  /** Signs a demo user JWT (valid 1 h) for a subject. */
  signUser(sub: string): Promise<string>
  /** The demo tenant's broker API key, for server-to-server calls. */
  backendKey: string
  close(): Promise<void>
}

/** The demo tenant: HS256 user JWTs, one backend key, a 120 s default lifetime so renewal shows. */
function demoTenant(userSecret: string, backendKey: string, origins: string[]): Tenant {
  return {
    id: 'demo',
    ...tenantSchema.parse({
      auth: { jwt: { issuer: DEMO_ISSUER, secret: userSecret }, apiKeys: [hashApiKey(backendKey)] },
      cors: { origins },
      creators: { allowed: DEMO_CREATORS },
      token: { expireAfter: { default: 120, max: 3600 }, maxWebsockets: { default: 1, max: 3 }, minRemaining: 30 },
    }),
  }
}

function originsFor(port: number): string[] {
  return [`http://localhost:${port}`, `http://127.0.0.1:${port}`]
}

/**
 * Starts the embedded default: the bundled simulator standing in for
 * tik.tools, the broker in memory with one demo tenant, and the `/demo` page.
 * Every secret is made up here and lives only as long as the process.
 */
export async function startDev(options: DevOptions = {}): Promise<DevServer> {
  const host = options.host ?? '127.0.0.1'
  const port = options.port ?? 8080
  const apiKey = `sim-${randomBytes(12).toString('hex')}`
  const userSecret = randomBytes(32).toString('base64url')
  const backendKey = `tkb_${randomBytes(24).toString('base64url')}`
  const sim = await startSimulator({
    host: '127.0.0.1',
    port: options.simPort ?? 8090,
    apiKeys: [apiKey],
    ...(options.eventIntervalMs !== undefined && { eventIntervalMs: options.eventIntervalMs }),
  })
  const config: Config = {
    upstream: { url: sim.url, apiKey, timeoutMs: 5000 },
    server: { host, port },
    tenantsFile: undefined,
    tenants: [demoTenant(userSecret, backendKey, originsFor(port))],
    redisUrl: undefined,
    cacheEncryptionKey: undefined,
    adminToken: options.adminToken,
    logLevel: options.logLevel ?? 'info',
  }
  const signUser = (sub: string): Promise<string> =>
    new SignJWT({ sub }).setProtectedHeader({ alg: 'HS256' }).setIssuer(DEMO_ISSUER).setIssuedAt().setExpirationTime('1h').sign(new TextEncoder().encode(userSecret))
  let app: FastifyInstance
  try {
    app = await buildApp(config, { logger: createLogger(config.logLevel) })
  } catch (err) {
    await sim.close()
    throw err
  }
  try {
    await app.register(demo, { signUser, wsUrl: sim.wsUrl, creators: DEMO_CREATORS })
    await app.listen({ host, port })
  } catch (err) {
    await app.close()
    await sim.close()
    throw err
  }
  const bound = (app.server.address() as AddressInfo).port
  // With port 0 the page's origin is only known now; the demo page posts from it, so allow it.
  if (bound !== port) app.broker.tenants.replace([demoTenant(userSecret, backendKey, originsFor(bound))])

  return {
    url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${bound}`,
    app,
    sim,
    signUser,
    backendKey,
    close: async () => {
      await app.close()
      await sim.close()
    },
  }
}

/**
 * `npm run dev`: {@link startDev} from the environment, closed gracefully on
 * a signal, with a ready-to-paste curl. Never for production.
 */
async function dev(): Promise<void> {
  const server = await startDev({
    host: process.env.HOST ?? '127.0.0.1',
    port: Number(process.env.PORT ?? 8080),
    simPort: Number(process.env.SIM_PORT ?? 8090),
    adminToken: process.env.ADMIN_TOKEN,
    logLevel: (process.env.LOG_LEVEL as Config['logLevel'] | undefined) ?? 'info',
  })
  closeWithGrace({ delay: 5000, logger: server.app.log }, async () => server.close())

  const { url: base, sim, backendKey } = server
  const jwt = await server.signUser('demo-user')
  process.stdout.write(`
tiktools-broker (dev) is running on ${base} — tik.tools simulator on ${sim.url}

Mint a token as the demo user (JWT valid for 1 h):

  curl -s -X POST ${base}/v1/token \\
    -H 'Authorization: Bearer ${jwt}' \\
    -H 'Content-Type: application/json' \\
    -d '{"allowed_creators":["streamer1"]}'

As a backend with the demo broker API key, on behalf of a user:

  curl -s -X POST ${base}/v1/token -H 'Authorization: Bearer ${backendKey}' \\
    -H 'Content-Type: application/json' -d '{"subject":"user-42","allowed_creators":["streamer1"]}'

Then open the live socket at ${sim.wsUrl}/?uniqueId=streamer1&jwtKey=<token>
Demo page: ${base}/demo   Metrics: ${base}/metrics   Spec: ${base}/openapi.yaml
(Everything above is made up at start and only valid for this dev process.)

`)
}

/** True when this file is the process's entry point (`node dist/dev.js`), not imported by a test. */
function isEntryPoint(): boolean {
  const entry = process.argv[1]
  if (entry === undefined) return false
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

if (isEntryPoint()) await dev()
