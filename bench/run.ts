/**
 * `npm run bench`: the broker's token path on loopback, against the bundled
 * simulator. Every row is measured in this run, beside its baseline:
 *   - healthz:        GET /healthz — the floor of Fastify + the HTTP client here
 *   - token hit:      POST /v1/token, one subject, always a cache hit
 *   - token hit, 1k users: 1,000 subjects cycling, each already cached
 *   - token miss:     every request a new subject → one upstream mint each
 *   - coalesced burst: 200 concurrent requests for one fresh key → 1 mint
 * Not part of the test suite; numbers depend on the machine (2 cores here).
 */
import { SignJWT } from 'jose'
import { Pool } from 'undici'
import { buildApp } from '../src/app.js'
import type { Config } from '../src/config/index.js'
import { tenantSchema } from '../src/config/tenant-schema.js'
import { createLogger } from '../src/logger.js'
import { startSimulator } from '../src/simulator/index.js'

const SECRET = 'bench-user-secret-bench-user-secret'
const API_KEY = 'bench-api-key'
const DURATION_MS = Number(process.env.BENCH_MS ?? 3000)
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32)

const sim = await startSimulator({ apiKeys: [API_KEY], perMinute: 1_000_000, perDay: 10_000_000 })
const config: Config = {
  upstream: { url: sim.url, apiKey: API_KEY, timeoutMs: 5000 },
  server: { host: '127.0.0.1', port: 0 },
  tenantsFile: undefined,
  tenants: [
    {
      id: 'bench',
      ...tenantSchema.parse({
        auth: { jwt: { issuer: 'https://bench/', secret: SECRET } },
        creators: { allowed: ['streamer1', 'streamer2'] },
        limits: { perSubjectPerMinute: 10_000_000, perTenantPerMinute: 100_000_000 },
      }),
    },
  ],
  redisUrl: undefined,
  cacheEncryptionKey: undefined,
  adminToken: undefined,
  logLevel: 'warn',
}
const app = await buildApp(config, { logger: createLogger('warn') })
await app.listen({ host: '127.0.0.1', port: 0 })
const address = app.server.address() as { port: number }
const pool = new Pool(`http://127.0.0.1:${address.port}`, { connections: CONCURRENCY, pipelining: 1 })

const jwtFor = (sub: string): Promise<string> =>
  new SignJWT({ sub }).setProtectedHeader({ alg: 'HS256' }).setIssuer('https://bench/').setExpirationTime('1h').sign(new TextEncoder().encode(SECRET))
const body = JSON.stringify({ allowed_creators: ['streamer1'] })

interface Row {
  scenario: string
  requests: number
  rps: number
  p50: number
  p99: number
  mints: number
}

async function request(path: string, jwt?: string): Promise<number> {
  const started = performance.now()
  const res = await pool.request({
    path,
    method: jwt === undefined ? 'GET' : 'POST',
    headers: jwt === undefined ? {} : { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' },
    ...(jwt !== undefined && { body }),
  })
  await res.body.dump()
  if (res.statusCode !== 200) throw new Error(`${path} answered ${res.statusCode}`)
  return performance.now() - started
}

/** Runs `next()` from CONCURRENCY workers for DURATION_MS, recording each latency. */
async function measure(scenario: string, next: (i: number) => Promise<number>, opts: { limit?: number } = {}): Promise<Row> {
  const latencies: number[] = []
  const mintsBefore = sim.stats.mints
  const deadline = performance.now() + DURATION_MS
  let i = 0
  const started = performance.now()
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < deadline && (opts.limit === undefined || i < opts.limit)) latencies.push(await next(i++))
    }),
  )
  const seconds = (performance.now() - started) / 1000
  latencies.sort((a, b) => a - b)
  const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0
  return { scenario, requests: latencies.length, rps: latencies.length / seconds, p50: at(0.5), p99: at(0.99), mints: sim.stats.mints - mintsBefore }
}

const rows: Row[] = []
const one = await jwtFor('user-1')
// Warm both paths up first, so neither row pays for JIT compilation.
await measure('warm-up', (k) => (k % 2 === 0 ? request('/healthz') : request('/v1/token', one)))
rows.push(await measure('healthz (baseline)', () => request('/healthz')))
rows.push(await measure('token hit, 1 user', () => request('/v1/token', one)))
const users = await Promise.all(Array.from({ length: 1000 }, (_, k) => jwtFor(`u${k}`)))
for (const jwt of users) await request('/v1/token', jwt)
rows.push(await measure('token hit, 1000 users', (k) => request('/v1/token', users[k % users.length] as string)))
const fresh = await Promise.all(Array.from({ length: 3000 }, (_, k) => jwtFor(`new-${k}`)))
rows.push(await measure('token miss (mint each)', (k) => request('/v1/token', fresh[k] as string), { limit: fresh.length }))

const burstJwt = await jwtFor('burst')
const mintsBefore = sim.stats.mints
const burstStart = performance.now()
const burst = await Promise.all(Array.from({ length: 200 }, () => request('/v1/token', burstJwt)))
burst.sort((a, b) => a - b)
rows.push({
  scenario: 'coalesced burst (200 at once)',
  requests: burst.length,
  rps: burst.length / ((performance.now() - burstStart) / 1000),
  p50: burst[100] ?? 0,
  p99: burst[197] ?? 0,
  mints: sim.stats.mints - mintsBefore,
})

const pad = (s: string | number, n: number): string => String(s).padStart(n)
console.log(`\nnode ${process.version}, concurrency ${CONCURRENCY}, ${DURATION_MS} ms per row, loopback\n`)
console.log(`${'scenario'.padEnd(30)}${pad('requests', 10)}${pad('req/s', 10)}${pad('p50 ms', 9)}${pad('p99 ms', 9)}${pad('mints', 7)}`)
for (const r of rows) {
  console.log(`${r.scenario.padEnd(30)}${pad(r.requests, 10)}${pad(Math.round(r.rps), 10)}${pad(r.p50.toFixed(2), 9)}${pad(r.p99.toFixed(2), 9)}${pad(r.mints, 7)}`)
}
const base = rows[0] as Row
const hit = rows[1] as Row
console.log(`\ncache hit costs ${(base.rps / hit.rps).toFixed(2)}× the baseline request (req/s ratio)\n`)

await pool.close()
await app.close()
await sim.close()
