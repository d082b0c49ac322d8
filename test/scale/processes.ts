import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { SignJWT } from 'jose'
import { freePort } from '../helpers/redis.js'

/** The compiled server every replica runs. */
export const DIST_MAIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url))
export const API_KEY = 'tt-scale-api-key-0123456789abcdef'
const USER_SECRET = 'scale-test-user-jwt-secret-0123456789'

/** Two tenants told apart by issuer: `bulk` with room for load, `strict` with 10 requests per subject a minute. */
export const TENANTS = {
  bulk: { issuer: 'https://bulk.test/', perSubjectPerMinute: 100 },
  strict: { issuer: 'https://strict.test/', perSubjectPerMinute: 10 },
} as const
export type TenantName = keyof typeof TENANTS

/** Throws the message a reader needs when `npm run build` has not been run. */
export function requireDist(): string {
  if (!existsSync(DIST_MAIN)) {
    throw new Error(`${DIST_MAIN} is missing: run \`npm run build\` first (\`npm test\` does) — this test runs the compiled broker`)
  }
  return DIST_MAIN
}

/** Writes the tenants file (the secret comes from `${USER_JWT_SECRET}`) into a fresh temp dir. */
export async function writeTenantsFile(): Promise<{ file: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'tkb-scale-'))
  const file = join(dir, 'tenants.yaml')
  const tenant = (t: (typeof TENANTS)[TenantName]) => `
    auth: { jwt: { issuer: "${t.issuer}", secret: "\${USER_JWT_SECRET}" } }
    creators: { allowed: [streamer1] }
    limits: { perSubjectPerMinute: ${t.perSubjectPerMinute}, perTenantPerMinute: 100000 }`
  await writeFile(file, `tenants:\n  bulk:${tenant(TENANTS.bulk)}\n  strict:${tenant(TENANTS.strict)}\n`)
  return { file, remove: () => rm(dir, { recursive: true, force: true }) }
}

/** A user JWT of one of the {@link TENANTS}. */
export function userJwt(tenant: TenantName, subject: string): Promise<string> {
  return new SignJWT({ sub: subject })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer(TENANTS[tenant].issuer)
    .setIssuedAt()
    .setExpirationTime('10m')
    .sign(new TextEncoder().encode(USER_SECRET))
}

/** Running `node dist/main.js` replicas. */
export interface Brokers {
  urls: string[]
  /** SIGTERM (graceful: closes Redis), SIGKILL after 3 s; safe to call twice. */
  close(): Promise<void>
}

/** Starts `count` replicas and waits until each answers `/healthz`; a replica that dies first fails with its output. */
export async function startBrokers(opts: { count: number; upstreamUrl: string; tenantsFile: string; redisUrl?: string }): Promise<Brokers> {
  const main = requireDist()
  const children: ChildProcess[] = []
  const killAll = () => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL'))
  process.once('exit', killAll)
  const brokers: Brokers = {
    urls: [],
    async close() {
      await Promise.all(children.map(stop))
      process.off('exit', killAll)
    },
  }
  try {
    for (let i = 0; i < opts.count; i++) {
      const port = await freePort()
      const env: NodeJS.ProcessEnv = {
        PATH: process.env.PATH,
        TIKTOOLS_API_KEY: API_KEY,
        UPSTREAM_URL: opts.upstreamUrl,
        TENANTS_FILE: opts.tenantsFile,
        USER_JWT_SECRET: USER_SECRET,
        HOST: '127.0.0.1',
        PORT: String(port),
        LOG_LEVEL: 'warn',
        ...(opts.redisUrl !== undefined && { REDIS_URL: opts.redisUrl }),
      }
      const child = spawn(process.execPath, [main], { env, stdio: ['ignore', 'pipe', 'pipe'] })
      children.push(child)
      const url = `http://127.0.0.1:${port}`
      await waitHealthy(url, child)
      brokers.urls.push(url)
    }
  } catch (err) {
    await brokers.close()
    throw err
  }
  return brokers
}

/** Room for a loaded CI machine starting several brokers at once (a broker alone starts in well under a second); only a failure waits this long. */
const START_TIMEOUT_MS = 30_000

async function waitHealthy(url: string, child: ChildProcess, timeoutMs = START_TIMEOUT_MS): Promise<void> {
  let output = ''
  child.stdout?.on('data', (d) => (output += d))
  child.stderr?.on('data', (d) => (output += d))
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (child.exitCode !== null) throw new Error(`broker exited with ${child.exitCode}:\n${output}`)
    const ok = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false)
    if (ok) return
    if (Date.now() > deadline) throw new Error(`broker at ${url} did not start within ${timeoutMs} ms:\n${output}`)
    await sleep(50)
  }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
  await exited
  clearTimeout(timer)
}

/** One answer of `POST /v1/token`, with its client-side latency. */
export interface Answer {
  status: number
  ms: number
  token: string | undefined
  code: string | undefined
  retryAfter: string | null
}

/** Sends one token request to `url` as `jwt` (bounded at 10 s). */
export async function requestToken(url: string, jwt: string): Promise<Answer> {
  const started = performance.now()
  const res = await fetch(`${url}/v1/token`, {
    method: 'POST',
    headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' },
    body: JSON.stringify({ allowed_creators: ['streamer1'] }),
    signal: AbortSignal.timeout(10_000),
  })
  const body = (await res.json()) as { data?: { token?: string }; code?: string }
  return { status: res.status, ms: performance.now() - started, token: body.data?.token, code: body.code, retryAfter: res.headers.get('retry-after') }
}

/** The `p`th percentile (0–100) of `values`, nearest rank. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN
}
