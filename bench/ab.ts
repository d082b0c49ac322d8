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
 * checkout's; labelled with its short SHA), or a directory under this checkout holding
 * a broker's `dist/` with an `openapi.yaml` beside it (the broker serves that file; its
 * imports resolve from this checkout's `node_modules`). The same argument twice starts
 * two processes of the build: processes of one build can differ by several µs per
 * request (bench/README.md). Every argument is checked before anything starts; a
 * mistake (an unknown row or revision, a directory without a build, no Redis for a
 * Redis row) is one line on standard error and exit code 2.
 *
 * Environment: BENCH_AB_ROW (`memory-hs256`, default; `memory-es256`, `memory-apikey`,
 * `redis-hs256`, `redis-es256`, `redis-apikey`), BENCH_AB_ROUNDS (8), BENCH_DURATION_S
 * (seconds a round measures, 3), BENCH_CONNECTIONS (50), BENCH_REDIS_URL.
 *
 * Prints one table: per server the median [min–max] over rounds of req/s, its ratio
 * to the first server's median, p99, and the server's CPU per answered request from
 * `/proc` (user mode and kernel, µs); on Redis also Redis's own CPU per request when
 * Redis runs on this machine (INFO's `process_id` is a `redis-server` here), else `–`.
 */
import { execFileSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync } from 'node:fs'
import { cpus } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { startSimulator } from '../src/simulator/index.js'
import { scanKeys } from '../test/helpers/redis.js'
import { hitRequest, startIdentities, UPSTREAM_KEY } from './fixtures.js'
import { cpuUs, forkLoader, type LoadSpec } from './load.js'
import { fmt, median, renderTable, spread } from './table.js'
import type { TargetSpec } from './target.js'
import { spawnTarget } from './targets.js'

const USAGE =
  'usage: [BENCH_AB_ROW=memory-hs256] npm run bench:ab -- <server> <server> ...\n' +
  '  server: bare | dist | git:<rev> | <directory with a broker build: dist/ and openapi.yaml beside it, under this checkout>\n' +
  '  BENCH_AB_ROW: memory-hs256 (default), memory-es256, memory-apikey, redis-hs256, redis-es256, redis-apikey\n'

/** Ends the run with one line on standard error and exit code 2: a mistake in what was asked, not a failure of a server. */
function refuse(message: string): never {
  process.stderr.write(`bench:ab: ${message}\n`)
  process.exit(2)
}

/** A whole number ≥ `min` from the environment, or the fallback; anything else refused. */
function envNumber(name: string, fallback: number, min: number, integer: boolean): number {
  const v = process.env[name]
  if (v === undefined || v === '') return fallback
  const n = Number(v)
  if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) refuse(`${name}=${v}: expected ${integer ? 'a whole number' : 'a number'} ≥ ${min}`)
  return n
}
const ROW = process.env.BENCH_AB_ROW ?? 'memory-hs256'
const ROUNDS = envNumber('BENCH_AB_ROUNDS', 8, 1, true)
const DURATION_S = envNumber('BENCH_DURATION_S', 3, 0.1, false)
const CONNECTIONS = envNumber('BENCH_CONNECTIONS', 50, 1, true)
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'
const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url))
const root = here('../')

const match = /^(memory|redis)-(hs256|es256|apikey)$/.exec(ROW)
const args = process.argv.slice(2)
if (args.length === 0) refuse(`no server named\n${USAGE}`)
if (match === null) refuse(`BENCH_AB_ROW=${ROW} is not a row\n${USAGE}`)
const [, store, credential] = match as unknown as [string, 'memory' | 'redis', 'hs256' | 'es256' | 'apikey']

const children: ChildProcess[] = []
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL')
})

/** What a server argument names: bare Fastify, a build directory, or a commit (its SHA, built later). */
type Named = { arg: string; kind: 'bare' } | { arg: string; kind: 'dist'; dist: string } | { arg: string; kind: 'git'; sha: string }

/** Reads a server argument, refusing one that names nothing runnable (every argument is read before anything starts). */
function named(arg: string): Named {
  if (arg === 'bare') return { arg, kind: 'bare' }
  if (arg.startsWith('git:')) return { arg, kind: 'git', sha: commitOf(arg.slice(4)) }
  const dir = resolve(arg)
  const dist = existsSync(join(dir, 'app.js')) ? dir : join(dir, 'dist')
  if (!existsSync(join(dist, 'app.js'))) refuse(`${arg}: no broker build there (neither ${arg}/app.js nor ${arg}/dist/app.js)`)
  // The broker reads its OpenAPI document beside its build at start, and its dependencies from this checkout.
  if (!existsSync(join(dist, '..', 'openapi.yaml'))) refuse(`${arg}: no openapi.yaml beside ${dist} (the broker serves it; copy or link this checkout's)`)
  if (!dist.startsWith(root)) refuse(`${arg}: not under this checkout (${root}): the build's imports resolve from this checkout's node_modules`)
  return { arg, kind: 'dist', dist }
}

/** A revision's commit SHA. */
function commitOf(rev: string): string {
  try {
    return execFileSync('git', ['rev-parse', '--verify', '--quiet', `${rev}^{commit}`], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return refuse(`git:${rev} is not a commit of this repository`)
  }
}

/**
 * Builds a commit's `src/` into `.bench-ab/<sha>/dist` (once), with this checkout's
 * `node_modules`. Built in a directory of its own and renamed into place when done, so an
 * interrupted build is never taken for a finished one.
 */
function buildCommit(sha: string): string {
  const dir = join(root, '.bench-ab', sha)
  const dist = join(dir, 'dist')
  if (existsSync(join(dist, 'app.js'))) return dist
  const building = join(root, '.bench-ab', `${sha}.building`)
  rmSync(building, { recursive: true, force: true })
  mkdirSync(building, { recursive: true })
  const files = ['src', 'tsconfig.json', 'tsconfig.client.json', 'openapi.yaml'].filter(
    (f) => execFileSync('git', ['ls-tree', '--name-only', sha, f], { cwd: root, encoding: 'utf8' }).trim() !== '',
  )
  execFileSync('sh', ['-c', `git archive ${sha} ${files.join(' ')} | tar -x -C '${building}'`], { cwd: root })
  // The commit's own node_modules would be a second install: this checkout's serve (a build that needs other
  // versions fails to start, and says so).
  symlinkSync(join(root, 'node_modules'), join(building, 'node_modules'))
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  let errors = ''
  for (const config of files.filter((f) => f.startsWith('tsconfig'))) {
    try {
      execFileSync(process.execPath, [tsc, '-p', join(building, config)], { cwd: building, stdio: 'pipe' })
    } catch (err) {
      const failure = err as { signal?: string | null; stdout?: unknown }
      // Interrupted (Ctrl-C reaches the compiler too): nothing of it is kept.
      if (failure.signal != null) {
        rmSync(building, { recursive: true, force: true })
        refuse(`git:${sha.slice(0, 10)}: the build was interrupted (${failure.signal})`)
      }
      // Type errors against this checkout's dependencies still emit JavaScript; app.js decides below.
      errors += String(failure.stdout ?? '')
    }
  }
  if (!existsSync(join(building, 'dist', 'app.js'))) {
    rmSync(building, { recursive: true, force: true })
    refuse(`git:${sha.slice(0, 10)}: the build left no dist/app.js\n${errors.slice(0, 4000)}`)
  }
  rmSync(dir, { recursive: true, force: true })
  renameSync(building, dir)
  return dist
}


/**
 * Redis's PID when it runs on this machine, so that its CPU is read beside the servers':
 * the `process_id` of INFO, where that process here is a Redis (or Valkey) server (a
 * Redis in a container reports the PID of its own namespace).
 */
async function redisPid(redis: Redis): Promise<number | undefined> {
  const pid = Number(/process_id:(\d+)/.exec(await redis.info('server'))?.[1])
  if (!Number.isInteger(pid)) return undefined
  try {
    return /^(redis|valkey)-server/.test(readFileSync(`/proc/${pid}/comm`, 'utf8')) ? pid : undefined
  } catch {
    return undefined
  }
}

// Every argument read (and every commit named found) before anything starts; commits built next.
const asked = args.map(named)
const dists = asked.map((n) => (n.kind === 'bare' ? undefined : n.kind === 'dist' ? n.dist : buildCommit(n.sha)))
// A commit labelled by its short SHA too: a relative revision (HEAD~3) names another commit tomorrow.
const labels = asked.map((n) => (n.kind === 'git' && !n.sha.startsWith(n.arg.slice(4)) ? `${n.arg} (${n.sha.slice(0, 7)})` : n.arg))

let redis: Redis | undefined
if (store === 'redis') {
  const client = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2000, retryStrategy: () => null })
  client.on('error', () => {})
  try {
    await client.connect()
    await client.ping()
  } catch (err) {
    client.disconnect()
    refuse(`no Redis at ${REDIS_URL} (${(err as Error).message}) for the ${ROW} row; set BENCH_REDIS_URL`)
  }
  redis = client
}

const { child: loader, load } = forkLoader()
children.push(loader)

const sim = await startSimulator({ apiKeys: [UPSTREAM_KEY], perMinute: 1_000_000_000, perDay: 1_000_000_000_000 })
const identities = await startIdentities()
// Each broker its own keys (a build's cache and counters are not another's), all under one prefix deleted at the end
// (also on SIGINT or SIGTERM; otherwise the keys' own TTLs, at most the token's lifetime, remove them).
const keyPrefix = `tkb:bench-ab:${randomBytes(6).toString('hex')}:`
async function cleanUp(): Promise<void> {
  for (const c of children) c.kill('SIGTERM')
  if (redis === undefined) return
  const keys = await scanKeys(redis, keyPrefix)
  if (keys.length > 0) await redis.del(...keys)
  redis.disconnect()
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void cleanUp()
      .catch(() => {})
      .finally(() => process.exit(130))
  })
}
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
for (const [i, dist] of dists.entries()) {
  const spec: TargetSpec =
    dist === undefined
      ? { kind: 'bare', upstreamUrl: sim.url, jwksUrl: identities.jwksUrl }
      : { kind: 'broker', upstreamUrl: sim.url, jwksUrl: identities.jwksUrl, ...(redis !== undefined && { redisUrl: REDIS_URL, keyPrefix: `${keyPrefix}${servers.length}:` }) }
  const label = labels[i] as string
  const before = labels.slice(0, i).filter((l) => l === label).length
  const { child, ready } = spawnTarget(spec, dist === undefined ? {} : { BENCH_DIST: dist })
  children.push(child)
  let url: string
  try {
    url = await ready
  } catch (err) {
    process.stderr.write(`bench:ab: ${label}: ${(err as Error).message} (its output is above)\n`)
    await cleanUp()
    process.exit(1)
  }
  servers.push({ label: before === 0 ? label : `${label} (${before + 1})`, url, pid: child.pid as number, rps: [], p99: [], user: [], sys: [], redisUs: [], usesRedis: spec.redisUrl !== undefined })
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
    // Each load opens its connections anew: half a second of unmeasured load first, outside the CPU read.
    await load(spec(s.url, 0.5, 0))
    const before = cpuUs(s.pid)
    const redisBefore = redisProcess === undefined || !s.usesRedis ? undefined : cpuUs(redisProcess)
    const result = await load(spec(s.url, DURATION_S, 0))
    const after = cpuUs(s.pid)
    const answered = result.ok + result.failed
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

await cleanUp()
await sim.close()
identities.close()
process.exit(0)
