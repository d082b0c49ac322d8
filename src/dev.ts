import { randomBytes } from 'node:crypto'
import closeWithGrace from 'close-with-grace'
import { SignJWT } from 'jose'
import { buildApp } from './app.js'
import { hashApiKey } from './auth/api-keys.js'
import type { Config } from './config/index.js'
import { tenantSchema } from './config/tenant-schema.js'
import demo from './demo/index.js'
import { createLogger } from './logger.js'
import { startSimulator } from './simulator/index.js'

/** The demo tenant's user-JWT issuer and the creators the simulator streams. */
export const DEMO_ISSUER = 'https://demo.tiktools-broker.local/'
export const DEMO_CREATORS = ['demo_creator', 'streamer1', 'streamer2']

/**
 * `npm run dev`: the embedded default. The bundled simulator stands in for
 * tik.tools, the broker runs in memory with one demo tenant, and a
 * ready-to-paste curl is printed. Never for production: every secret here is
 * made up at start.
 */
async function dev(): Promise<void> {
  const port = Number(process.env.PORT ?? 8080)
  const host = process.env.HOST ?? '127.0.0.1'
  const apiKey = `sim-${randomBytes(12).toString('hex')}`
  const userSecret = randomBytes(32).toString('base64url')
  const backendKey = `tkb_${randomBytes(24).toString('base64url')}`
  const sim = await startSimulator({ host: '127.0.0.1', port: Number(process.env.SIM_PORT ?? 8090), apiKeys: [apiKey] })
  const origins = [`http://localhost:${port}`, `http://127.0.0.1:${port}`]
  const config: Config = {
    upstream: { url: sim.url, apiKey, timeoutMs: 5000 },
    server: { host, port },
    tenantsFile: undefined,
    tenants: [
      {
        id: 'demo',
        ...tenantSchema.parse({
          auth: { jwt: { issuer: DEMO_ISSUER, secret: userSecret }, apiKeys: [hashApiKey(backendKey)] },
          cors: { origins },
          creators: { allowed: DEMO_CREATORS },
          token: { expireAfter: { default: 120, max: 3600 }, maxWebsockets: { default: 1, max: 3 }, minRemaining: 30 },
        }),
      },
    ],
    redisUrl: undefined,
    cacheEncryptionKey: undefined,
    adminToken: process.env.ADMIN_TOKEN,
    logLevel: (process.env.LOG_LEVEL as Config['logLevel'] | undefined) ?? 'info',
  }
  const logger = createLogger(config.logLevel)
  const app = await buildApp(config, { logger })
  const signUser = (sub: string): Promise<string> =>
    new SignJWT({ sub }).setProtectedHeader({ alg: 'HS256' }).setIssuer(DEMO_ISSUER).setIssuedAt().setExpirationTime('1h').sign(new TextEncoder().encode(userSecret))
  await registerDemo(app, { signUser, wsUrl: sim.wsUrl, creators: DEMO_CREATORS })

  closeWithGrace({ delay: 5000, logger }, async () => {
    await app.close()
    await sim.close()
  })
  await app.listen({ host, port })

  const jwt = await signUser('demo-user')
  const base = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`
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

/** The `/demo` page: only `npm run dev` registers it, never the production server. */
async function registerDemo(
  app: Awaited<ReturnType<typeof buildApp>>,
  options: { signUser: (sub: string) => Promise<string>; wsUrl: string; creators: string[] },
): Promise<void> {
  await app.register(demo, options)
}

await dev()
