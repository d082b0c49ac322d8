/**
 * Builds side by side: one hit row, each build in a server process of its own,
 * measured in alternating rounds in one run, so that a change is judged against
 * its baseline on the same machine at the same moment (`npm run bench` pairs each
 * row with bare Fastify, not two builds with each other).
 *
 *   npm run bench:ab -- bare git:3f08fa9 dist
 *
 * Each argument is a server: `bare` (bare Fastify, as in `npm run bench`), `dist`
 * (this checkout's build: `npm run bench:ab` builds it first), `git:<rev>` (that
 * commit's `src/`, built into `.bench-ab/<sha>/`: its `node_modules` are this
 * checkout's), or a directory holding a `dist/` of the broker under this checkout.
 * The same argument twice starts two processes of the build: processes of one build
 * can differ by several µs per request (bench/README.md).
 *
 * Environment: BENCH_AB_ROW (`memory-hs256`, default; `memory-es256`, `memory-apikey`,
 * `redis-hs256`, `redis-es256`, `redis-apikey`), BENCH_AB_ROUNDS (8), BENCH_DURATION_S
 * (seconds a round measures, 3), BENCH_CONNECTIONS (50), BENCH_REDIS_URL.
 *
 * Prints one table: per server the median [min–max] over rounds of req/s, its ratio
 * to the first server's median, p99, and the server's CPU per answered request from
 * `/proc` (user mode and kernel, µs); on Redis also Redis's own CPU per request when
 * Redis runs on this machine (its `process_id` readable in `/proc`), else `–`.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, rmSync, symlinkSync } from 'node:fs'
import { cpus } from 'node:os'
import { isAbsolute, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { startSimulator } from '../src/simulator/index.js'
import { scanKeys } from '../test/helpers/redis.js'
import { hitRequest, NODE_FLAGS, startIdentities, UPSTREAM_KEY } from './fixtures.js'
import { cpuUs, forkLoader, type LoadSpec } from './load.js'
import { fmt, median, renderTable, spread } from './table.js'
import type { TargetSpec } from './target.js'

const env = (name: string, fallback: number): number => {
  const v = process.env[name]
  return v === undefined || v === '' ? fallback : Number(v)
}
const ROW = process.env.BENCH_AB_ROW ?? 'memory-hs256'
const ROUNDS = env('BENCH_AB_ROUNDS', 8)
const DURATION_S = env('BENCH_DURATION_S', 3)
const CONNECTIONS = env('BENCH_CONNECTIONS', 50)
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'
const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url))
const root = here('../')

const match = /^(memory|redis)-(hs256|es256|apikey)$/.exec(ROW)
const args = process.argv.slice(2)
if (match === null || args.length === 0) {
  process.stderr.write('usage: npm run bench:ab -- <bare | dist | git:<rev> | <dir>> ... (BENCH_AB_ROW=memory|redis-hs256|es256|apikey)\n')
  process.exit(2)
}
const [, store, credential] = match as unknown as [string, 'memory' | 'redis', 'hs256' | 'es256' | 'apikey']

const children: ChildProcess[] = []
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL')
})

/** The `dist/` directory a server argument names (building a commit first); undefined for bare Fastify. */
function distOf(arg: string): string | undefined {
  if (arg === 'bare') return undefined
  if (arg.startsWith('git:')) return buildCommit(arg.slice(4))
  const dir = isAbsolute(arg) ? arg : resolve(arg)
  const dist = existsSync(join(dir, 'app.js')) ? dir : join(dir, 'dist')
  if (!existsSync(join(dist, 'app.js'))) throw new Error(`${arg}: no broker build (app.js) there`)
  return dist
}

/** Builds a commit's `src/` into `.bench-ab/<sha>/dist` (once), with this checkout's `node_modules`. */
function buildCommit(rev: string): string {
  let sha: string
  try {
    sha = execFileSync('git', ['rev-parse', '--verify', '--quiet', `${rev}^{commit}`], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    process.stderr.write(`bench:ab: git:${rev} is not a commit of this repository\n`)
    process.exit(2)
  }
  const dir = join(root, '.bench-ab', sha)
  const dist = join(dir, 'dist')
  if (existsSync(join(dist, 'app.js'))) return dist
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const files = ['src', 'tsconfig.json', 'tsconfig.client.json', 'openapi.yaml'].filter(
    (f) => execFileSync('git', ['ls-tree', '--name-only', sha, f], { cwd: root, encoding: 'utf8' }).trim() !== '',
  )
  execFileSync('sh', ['-c', `git archive ${sha} ${files.join(' ')} | tar -x -C '${dir}'`], { cwd: root })
  // The commit's node_modules would be a second install: this checkout's serve (a build that needs other
  // versions fails to start, and says so).
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'))
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  for (const config of files.filter((f) => f.startsWith('tsconfig'))) {
    try {
      execFileSync(process.execPath, [tsc, '-p', join(dir, config)], { cwd: dir, stdio: 'pipe' })
    } catch {
      // Type errors against this checkout's dependencies still emit JavaScript; app.js decides below.
    }
  }
  if (!existsSync(join(dist, 'app.js'))) throw new Error(`git:${rev}: the build left no dist/app.js`)
  return dist
}

/** Starts one server under test; its URL once it prints READY, and its PID. */
async function start(spec: TargetSpec, dist: string | undefined): Promise<{ url: string; pid: number }> {
  const child = spawn(process.execPath, [...NODE_FLAGS, '--import', 'tsx', here('./target.ts')], {
    env: { ...process.env, BENCH_TARGET: JSON.stringify(spec), ...(dist !== undefined && { BENCH_DIST: dist }) },
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  children.push(child)
  for await (const line of createInterface({ input: child.stdout as NodeJS.ReadableStream })) {
    if (line.startsWith('READY ')) return { url: line.slice(6), pid: child.pid as number }
  }
  throw new Error(`a server (${dist ?? 'bare'}) exited before it was ready`)
}


/** Redis's PID when it runs on this machine (its CPU is then read beside the servers'). */
async function redisPid(redis: Redis): Promise<number | undefined> {
  const pid = Number(/process_id:(\d+)/.exec(await redis.info('server'))?.[1])
  return Number.isInteger(pid) && existsSync(`/proc/${pid}/stat`) ? pid : undefined
}

const { child: loader, load } = forkLoader()
children.push(loader)

const sim = await startSimulator({ apiKeys: [UPSTREAM_KEY], perMinute: 1_000_000_000, perDay: 1_000_000_000_000 })
const identities = await startIdentities()
const redis = store === 'redis' ? new Redis(REDIS_URL, { maxRetriesPerRequest: 1, connectTimeout: 2000 }) : undefined
// Each broker its own keys (a build's cache and counters are not another's), all under one prefix deleted at the end.
const keyPrefix = `tkb:bench-ab:${randomBytes(6).toString('hex')}:`
const redisProcess = redis === undefined ? undefined : await redisPid(redis)
const request = hitRequest(credential, identities)

interface Server {
  label: string
  url: string
  pid: number
  rps: number[]
  p99: number[]
  user: number[]
  sys: number[]
  /** Redis's CPU per request while this server was measured (a broker on Redis, Redis on this machine). */
  redisUs: number[]
  usesRedis: boolean
}
const servers: Server[] = []
for (const arg of args) {
  const dist = distOf(arg)
  const spec: TargetSpec =
    dist === undefined
      ? { kind: 'bare', upstreamUrl: sim.url, jwksUrl: identities.jwksUrl }
      : { kind: 'broker', upstreamUrl: sim.url, jwksUrl: identities.jwksUrl, ...(redis !== undefined && { redisUrl: REDIS_URL, keyPrefix: `${keyPrefix}${servers.length}:` }) }
  const label = servers.some((s) => s.label === arg) ? `${arg} (${servers.filter((s) => s.label.startsWith(arg)).length + 1})` : arg
  servers.push({ label, ...(await start(spec, dist)), rps: [], p99: [], user: [], sys: [], redisUs: [], usesRedis: spec.redisUrl !== undefined })
}

const spec = (url: string, durationS: number, warmupS: number): LoadSpec => ({
  url,
  path: '/v1/token',
  method: 'POST',
  ...request,
  connections: CONNECTIONS,
  durationS,
  warmupS,
})
// Every server warmed (JIT, connections, the token cached) before the first round.
for (const s of servers) await load(spec(s.url, 1, 1))
for (let round = 0; round < ROUNDS; round++) {
  process.stderr.write(`bench:ab: round ${round + 1} of ${ROUNDS}\n`)
  for (const s of round % 2 === 0 ? servers : [...servers].reverse()) {
    const before = cpuUs(s.pid)
    const redisBefore = redisProcess === undefined || !s.usesRedis ? undefined : cpuUs(redisProcess)
    // The measured load's own warm-up (0.5 s) is in the CPU read: counted by its share of the round's time.
    const result = await load(spec(s.url, DURATION_S, 0.5))
    const after = cpuUs(s.pid)
    const answered = result.ok * (1 + 0.5 / result.seconds)
    if (result.failed > 0) process.stderr.write(`bench:ab: ${s.label}: ${result.failed} requests failed\n`)
    s.rps.push(result.rps)
    s.p99.push(result.p99)
    s.user.push((after.user - before.user) / answered)
    s.sys.push((after.sys - before.sys) / answered)
    if (redisBefore !== undefined) {
      const redisAfter = cpuUs(redisProcess as number)
      s.redisUs.push((redisAfter.user + redisAfter.sys - redisBefore.user - redisBefore.sys) / answered)
    }
  }
}

const first = median((servers[0] as Server).rps)
const us1 = (n: number): string => (Number.isFinite(n) ? n.toFixed(1) : 'n/a')
process.stdout.write(
  `\ntiktools-broker bench:ab: hit · ${store} · ${credential}, ${CONNECTIONS} connections, ${ROUNDS} alternating rounds of ${DURATION_S} s; node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? '?'}\n` +
    'median [min–max] over rounds; server CPU from /proc per answered request (user mode + kernel)\n\n',
)
process.stdout.write(
  renderTable(
    ['server', 'req/s', '× first', 'p99 ms', 'CPU µs/req', 'user µs', 'kernel µs', 'Redis CPU µs/req'],
    servers.map((s) => ({
      label: s.label,
      cells: [
        spread(s.rps, fmt.int),
        fmt.ratio(median(s.rps) / first),
        spread(s.p99, fmt.ms),
        spread(
          s.user.map((u, i) => u + (s.sys[i] as number)),
          us1,
        ),
        spread(s.user, us1),
        spread(s.sys, us1),
        s.redisUs.length === 0 ? '–' : spread(s.redisUs, us1),
      ],
    })),
  ) + '\n',
)

for (const c of children) c.kill('SIGTERM')
await sim.close()
identities.close()
if (redis !== undefined) {
  const keys = await scanKeys(redis, keyPrefix)
  if (keys.length > 0) await redis.del(...keys)
  redis.disconnect()
}
process.exit(0)
