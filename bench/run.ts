/**
 * `npm run bench`: the broker's token path against bare Fastify, every row
 * measured in this run, on loopback. Each server under test and the load
 * generator (autocannon) run in processes of their own; the simulator and a
 * JWKS server run here, idle but for the naive proxy and the misses.
 *
 * Knobs (environment): BENCH_REPEATS (3), BENCH_DURATION_S (4), BENCH_WARMUP_S (1),
 * BENCH_CONNECTIONS (50), BENCH_SEQUENTIAL (2000), BENCH_BURST (1000) over
 * BENCH_BURST_KEYS (100), BENCH_MISSES (1000) after BENCH_MISS_WARMUP (500), BENCH_MEMORY_TOKENS (100000),
 * BENCH_REDIS_URL (redis://127.0.0.1:6379), BENCH_ROWS (comma list of row ids,
 * default all), BENCH_DIST (the build the broker runs from, default dist/), BENCH_CPU_PROF (a directory: the broker processes write V8
 * CPU profiles of their load there; `tsx bench/profile.ts` summarises one). Exits non-zero when a request failed or a
 * burst minted other than once per key.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { readFile, rm } from 'node:fs/promises'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { startSimulator } from '../src/simulator/index.js'
import { scanKeys } from '../test/helpers/redis.js'
import { API_KEY_BODY, HIT_BODY, hitRequest, startIdentities, UPSTREAM_KEY } from './fixtures.js'
import { cpuUs, forkLoader, type LoadResult, type LoadSpec } from './load.js'
import type { MemoryResult } from './memory.js'
import { fmt, median, renderTable, spread, type TableRow } from './table.js'
import type { TargetSpec } from './target.js'
import { NODE_FLAGS, spawnTarget } from './targets.js'

const env = (name: string, fallback: number): number => {
  const v = process.env[name]
  return v === undefined || v === '' ? fallback : Number(v)
}
const REPEATS = env('BENCH_REPEATS', 3)
const DURATION_S = env('BENCH_DURATION_S', 4)
const WARMUP_S = env('BENCH_WARMUP_S', 1)
const CONNECTIONS = env('BENCH_CONNECTIONS', 50)
const SEQUENTIAL = env('BENCH_SEQUENTIAL', 2000)
const BURST = env('BENCH_BURST', 1000)
const BURST_KEYS = env('BENCH_BURST_KEYS', 100)
const MISSES = env('BENCH_MISSES', 1000)
/** Unmeasured misses through each server first, so a miss is timed on warm (JIT-compiled) code, as in a broker that has served a few hundred. */
const MISS_WARMUP = env('BENCH_MISS_WARMUP', 500)
const MEMORY_TOKENS = env('BENCH_MEMORY_TOKENS', 100_000)
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'
const ONLY = process.env.BENCH_ROWS?.split(',').filter((s) => s !== '')
const CPU_PROF = process.env.BENCH_CPU_PROF
const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url))
let failures = 0
const children: ChildProcess[] = []

// Whatever ends this process, no child outlives it.
const fail = (err: unknown): void => {
  process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
  for (const c of children) c.kill('SIGKILL')
  process.exit(1)
}
process.on('uncaughtException', fail)
process.on('unhandledRejection', fail)
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => fail(new Error(signal)))

// --- the servers this process runs: the upstream simulator and a JWKS for the ES256 tenant ---
const sim = await startSimulator({ apiKeys: [UPSTREAM_KEY], perMinute: 1_000_000_000, perDay: 1_000_000_000_000 })
const identities = await startIdentities()
const { jwksUrl } = identities

// --- Redis, when there is one: a random key prefix, deleted at the end ---
async function redisIfAny(): Promise<Redis | undefined> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null })
  redis.on('error', () => {})
  try {
    await redis.connect()
    await redis.ping()
    return redis
  } catch {
    redis.disconnect()
    return undefined
  }
}
const redis = await redisIfAny()
const redisPrefix = `tkb:bench:${randomBytes(6).toString('hex')}:`

// --- processes ---

/** Starts a server under test and resolves with its URL once it prints READY. */
async function startTarget(spec: TargetSpec, profile = false): Promise<string> {
  const withProfile = profile && CPU_PROF !== undefined ? { ...spec, profileDir: CPU_PROF } : spec
  const timingFile = join(tmpdir(), `tkb-bench-timing-${randomBytes(6).toString('hex')}.json`)
  const { child, ready } = spawnTarget(withProfile, { BENCH_TIMING_FILE: timingFile })
  children.push(child)
  const url = await ready
  if (child.pid !== undefined) pids.set(url, child.pid)
  timingFiles.set(url, timingFile)
  return url
}

/** Each server's inside-timing file, by URL (see target.ts). */
const timingFiles = new Map<string, string>()

/** Asks the server at `url` to start or end an inside timing (SIGUSR2), and waits for its file: `[server ms, upstream ms]` per answer. */
async function insideTiming(url: string): Promise<Array<[number, number]>> {
  const file = timingFiles.get(url) as string
  await rm(file, { force: true })
  process.kill(pids.get(url) as number, 'SIGUSR2')
  for (let waited = 0; waited < 5000; waited += 10) {
    try {
      return JSON.parse(await readFile(file, 'utf8')) as Array<[number, number]>
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  }
  throw new Error(`bench target at ${url} wrote no timing`)
}

/** Runs `run` while the server at `url` times each answer inside (one connection at a time): its own ms beyond its upstream calls, and those calls' ms. */
async function timedInside(url: string, run: () => Promise<Measured>): Promise<{ result: Measured; own: number[]; upstream: number[] }> {
  await insideTiming(url)
  const result = await run()
  const samples = await insideTiming(url)
  return { result, own: samples.map(([server, upstream]) => server - upstream), upstream: samples.map(([, upstream]) => upstream) }
}

/** Each server's process, by URL: its CPU time is read around every measured run. */
const pids = new Map<string, number>()

const { child: loader, load: loadOnce } = forkLoader()
children.push(loader)
/** What a measured run gives: the client's view, and the server's CPU time per answered request (µs), in all and its user-mode part. */
type Measured = LoadResult & { cpuPerRequest: number; userPerRequest: number }

/**
 * Runs load from the load process. The server's own CPU time per request is
 * reported beside throughput: on a machine shared with other work it moves far
 * less than requests/s does, so it is the better before/after figure there.
 */
async function load(spec: LoadSpec): Promise<Measured> {
  const { warmupS = 0, amount: _amount, ...rest } = spec
  if (warmupS > 0) await loadOnce({ ...rest, durationS: warmupS })
  const pid = pids.get(spec.url)
  const before = cpuUs(pid)
  const result = await loadOnce({ ...spec, warmupS: 0 })
  const after = cpuUs(pid)
  const answered = result.ok + result.failed
  return { ...result, cpuPerRequest: (after.user + after.sys - before.user - before.sys) / answered, userPerRequest: (after.user - before.user) / answered }
}

async function memory(): Promise<MemoryResult> {
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', here('./memory.ts')], {
    env: { ...process.env, BENCH_MEMORY_TOKENS: String(MEMORY_TOKENS) },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  children.push(child)
  let out = ''
  child.stdout?.on('data', (d) => (out += String(d)))
  const [code] = await once(child, 'exit')
  if (code !== 0) throw new Error(`bench/memory.ts exited ${String(code)}`)
  return JSON.parse(out.trim().split('\n').pop() as string) as MemoryResult
}

async function stopAll(): Promise<void> {
  await Promise.all(
    children.map(async (c) => {
      if (c.exitCode !== null || c.signalCode !== null) return
      const exited = once(c, 'exit')
      c.kill('SIGTERM')
      const timer = setTimeout(() => c.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    }),
  )
}

// --- the rows ---
interface HitRow {
  id: string
  label: string
  url: () => string
  headers: Record<string, string>
  body: string
}
/** The naive proxy's request: a JSON body, no credential (it checks none). */
const JSON_ONLY: Record<string, string> = { 'content-type': 'application/json' }
const backend = hitRequest('apikey', identities).headers

const started = await Promise.all([
  startTarget({ kind: 'bare', upstreamUrl: sim.url, jwksUrl }),
  startTarget({ kind: 'broker', upstreamUrl: sim.url, jwksUrl }, true),
  redis === undefined ? undefined : startTarget({ kind: 'broker', upstreamUrl: sim.url, jwksUrl, redisUrl: REDIS_URL, keyPrefix: redisPrefix }, true),
  startTarget({ kind: 'naive', upstreamUrl: sim.url, jwksUrl }),
])
const urls: Record<string, string | undefined> = { bare: started[0], memory: started[1], redis: started[2], naive: started[3] }

const hitRows: HitRow[] = []
for (const store of ['memory', 'redis'] as const) {
  const url = (): string => urls[store] ?? ''
  hitRows.push(
    { id: `${store}-hs256`, label: `hit · ${store} · HS256 user JWT`, url, ...hitRequest('hs256', identities) },
    { id: `${store}-es256`, label: `hit · ${store} · ES256 user JWT (JWKS)`, url, ...hitRequest('es256', identities) },
    { id: `${store}-apikey`, label: `hit · ${store} · broker API key`, url, ...hitRequest('apikey', identities) },
  )
}
hitRows.push({ id: 'naive', label: 'naive proxy (upstream every time)', url: () => urls.naive ?? '', headers: JSON_ONLY, body: HIT_BODY })
const wanted = (id: string): boolean => ONLY === undefined || ONLY.includes(id)
const available = (row: HitRow): boolean => row.url() !== ''

const throughput = (url: string, headers: Record<string, string>, body: string): LoadSpec => ({
  url,
  path: '/v1/token',
  method: 'POST',
  headers,
  body,
  connections: CONNECTIONS,
  durationS: DURATION_S,
  warmupS: WARMUP_S,
})
const sequential = (url: string, headers: Record<string, string>, body: string): LoadSpec => ({
  ...throughput(url, headers, body),
  connections: 1,
  amount: SEQUENTIAL,
  warmupS: Math.min(WARMUP_S, 1),
})

function noteFailures(what: string, r: LoadResult): void {
  if (r.failed === 0) return
  failures += 1
  process.stderr.write(`bench: ${what}: ${r.failed} requests failed\n`)
}

// Every hit row's token is minted once before anything is measured.
for (const row of hitRows) if (available(row) && row.id !== 'naive') noteFailures(`prime ${row.id}`, await load({ ...sequential(row.url(), row.headers, row.body), amount: 3, warmupS: 0 }))

const bare: Measured[] = []
/** Two bare runs taken as one: the mean of their rates, latencies and CPU per request. */
const meanOf = (a: Measured, b: Measured): Measured => ({
  ok: a.ok + b.ok,
  failed: a.failed + b.failed,
  seconds: a.seconds + b.seconds,
  rps: (a.rps + b.rps) / 2,
  p50: (a.p50 + b.p50) / 2,
  p99: (a.p99 + b.p99) / 2,
  cpuPerRequest: (a.cpuPerRequest + b.cpuPerRequest) / 2,
  userPerRequest: (a.userPerRequest + b.userPerRequest) / 2,
})
const paired = new Map<string, Array<{ row: Measured; bare: Measured }>>()
const seqBare: Measured[] = []
const seqHit: Measured[] = []
const bursts = new Map<string, Array<{ mints: number; result: LoadResult }>>()
/** One repeat of the miss rows; `*Own` and `*Upstream` are p50s of the inside timing, in ms. */
const misses: Array<{ upstream: LoadResult; broker: Measured; proxy: Measured; brokerOwn: number; brokerUpstream: number; proxyOwn: number; proxyUpstream: number }> = []
// Bare gets the very POST its row sends (same headers, same body): only the server differs.
const bareSpec = (spec: LoadSpec): LoadSpec => ({ ...spec, url: urls.bare as string })
const t0 = performance.now()
const progress = (what: string): boolean => process.stderr.write(`bench: ${((performance.now() - t0) / 1000).toFixed(1)} s: ${what}\n`)

for (let rep = 0; rep < REPEATS; rep++) {
  progress(`repeat ${rep + 1} of ${REPEATS}`)
  // 50 connections: each row between two bare runs (before and after), so that a machine whose speed drifts over
  // seconds weighs on both sides alike; the row's ratios are to the mean of the two.
  // The rows' order turns by one each repeat, so that no row is always the one after the other rows' (or a burst's) work.
  for (const row of [...hitRows.slice(rep % hitRows.length), ...hitRows.slice(0, rep % hitRows.length)]) {
    if (!wanted(row.id) || !available(row)) continue
    const spec = throughput(row.url(), row.headers, row.body)
    const before = await load(bareSpec(spec))
    const r = await load(spec)
    const after = await load(bareSpec(spec))
    noteFailures('bare', before)
    noteFailures(row.id, r)
    noteFailures('bare', after)
    bare.push(before, after)
    paired.set(row.id, [...(paired.get(row.id) ?? []), { row: r, bare: meanOf(before, after) }])
  }
  if (wanted('sequential')) {
    const spec = sequential(urls.memory as string, hitRequest('hs256', identities).headers, HIT_BODY)
    seqBare.push(await load(bareSpec(spec)))
    seqHit.push(await load(spec))
    noteFailures('sequential', seqHit.at(-1) as LoadResult)
  }
  // Cold burst: every request at once, fresh keys (API-key subjects) cycling BURST_KEYS.
  for (const store of ['memory', 'redis'] as const) {
    if (!wanted(`burst-${store}`) || urls[store] === undefined) continue
    const before = sim.stats.mints
    const result = await load({
      url: urls[store] as string,
      path: '/v1/token',
      method: 'POST',
      headers: backend,
      body: API_KEY_BODY,
      connections: Math.min(BURST, 1000),
      amount: BURST,
      vary: { prefix: `burst-${rep}-${randomBytes(3).toString('hex')}-`, count: BURST_KEYS },
    })
    const mints = sim.stats.mints - before
    noteFailures(`burst-${store}`, result)
    if (mints !== BURST_KEYS) {
      failures += 1
      process.stderr.write(`bench: cold burst on ${store} minted ${mints} times for ${BURST_KEYS} keys\n`)
    }
    bursts.set(store, [...(bursts.get(store) ?? []), { mints, result }])
  }
  // A miss, one at a time: the upstream alone, then the broker minting through it (a new subject each request).
  if (wanted('miss')) {
    const mintBody = JSON.stringify({ expire_after: 600, max_websockets: 1, allowed_creators: ['streamer1'] })
    const upstreamSpec: LoadSpec = {
      url: sim.url,
      path: `/authentication/jwt?apiKey=${UPSTREAM_KEY}`,
      method: 'POST',
      headers: JSON_ONLY,
      body: mintBody,
      connections: 1,
      amount: MISSES,
      warmupS: 0,
    }
    const brokerSpec = (prefix: string, amount: number): LoadSpec => ({
      url: urls.memory as string,
      path: '/v1/token',
      method: 'POST',
      headers: backend,
      body: API_KEY_BODY,
      connections: 1,
      amount,
      warmupS: 0,
      vary: { prefix: `${prefix}-${rep}-${randomBytes(3).toString('hex')}-`, count: Number.MAX_SAFE_INTEGER },
    })
    const proxySpec: LoadSpec = { url: urls.naive as string, path: '/v1/token', method: 'POST', headers: JSON_ONLY, body: HIT_BODY, connections: 1, amount: MISSES, warmupS: 0 }
    if (MISS_WARMUP > 0) {
      // Each warm-up miss is a key of its own too (another prefix), so every measured request is still a miss.
      await load({ ...upstreamSpec, amount: MISS_WARMUP })
      await load(brokerSpec('miss-warmup', MISS_WARMUP))
      await load({ ...proxySpec, amount: MISS_WARMUP })
    }
    const upstream = await load(upstreamSpec)
    const broker = await timedInside(urls.memory as string, () => load(brokerSpec('miss', MISSES)))
    // The same hop through a plain proxy: what any server in between adds, with none of the broker's work.
    const proxy = await timedInside(urls.naive as string, () => load(proxySpec))
    noteFailures('miss upstream', upstream)
    noteFailures('miss broker', broker.result)
    noteFailures('miss proxy', proxy.result)
    misses.push({
      upstream,
      broker: broker.result,
      proxy: proxy.result,
      brokerOwn: median(broker.own),
      brokerUpstream: median(broker.upstream),
      proxyOwn: median(proxy.own),
      proxyUpstream: median(proxy.upstream),
    })
  }
}
progress('memory')
const mem = wanted('memory') ? await memory() : undefined
progress('done')

// --- the table ---
const rows: TableRow[] = []
const rps = (rs: LoadResult[]): string => spread(rs.map((r) => r.rps), fmt.int)
const cpu = (rs: Measured[]): string => spread(rs.map((r) => r.cpuPerRequest), fmt.us)
/** The server CPU split: user mode (JavaScript, V8, the HTTP parser) and the kernel (system calls, loopback TCP), medians in µs per request. */
const split = (rs: Measured[]): string => `CPU µs/req: user ${fmt.us(median(rs.map((r) => r.userPerRequest)))} + kernel ${fmt.us(median(rs.map((r) => r.cpuPerRequest - r.userPerRequest)))}`
const ms = (rs: LoadResult[], q: 'p50' | 'p99'): string => spread(rs.map((r) => r[q]), fmt.ms)
rows.push({ section: `${CONNECTIONS} connections, ${DURATION_S} s each; every row between two bare runs (before, after) sent its request; ratios to their mean` })
if (bare.length > 0) rows.push({ label: 'bare Fastify (constant ~400 B JSON)', cells: [rps(bare), ms(bare, 'p50'), ms(bare, 'p99'), '1.00', '1.00', cpu(bare), '1.00', split(bare)] })
for (const row of hitRows) {
  if (!wanted(row.id)) continue
  const pairs = paired.get(row.id)
  if (pairs === undefined) {
    rows.push({ label: row.label, cells: ['–', '–', '–', '–', '–', '–', '–', `not run: no Redis at ${REDIS_URL}`] })
    continue
  }
  const rs = pairs.map((p) => p.row)
  rows.push({
    label: row.label,
    cells: [
      rps(rs),
      ms(rs, 'p50'),
      ms(rs, 'p99'),
      spread(pairs.map((p) => p.row.rps / p.bare.rps), fmt.ratio),
      spread(pairs.map((p) => p.row.p99 / p.bare.p99), fmt.ratio),
      cpu(rs),
      spread(pairs.map((p) => p.row.cpuPerRequest / p.bare.cpuPerRequest), fmt.ratio),
      split(rs),
    ],
  })
}
if (seqHit.length > 0) {
  const added = seqHit.map((h, i) => (h.p50 - (seqBare[i] as LoadResult).p50) * 1000)
  rows.push({ section: `one keep-alive connection, ${SEQUENTIAL} sequential requests` })
  // A run of a fixed number of requests ends on autocannon's one-second tick: its rate says nothing.
  rows.push({ label: 'bare Fastify', cells: ['', ms(seqBare, 'p50'), ms(seqBare, 'p99'), '', '', cpu(seqBare), '', ''] })
  rows.push({ label: 'hit · memory · HS256 user JWT', cells: ['', ms(seqHit, 'p50'), ms(seqHit, 'p99'), '', '', cpu(seqHit), spread(seqHit.map((h, i) => h.cpuPerRequest / (seqBare[i] as Measured).cpuPerRequest), fmt.ratio), `p50 adds ${spread(added, fmt.us)} µs to bare`] })
}
if (bursts.size > 0) rows.push({ section: `cold burst: ${BURST} requests at once over ${BURST_KEYS} new keys (broker API key)` })
for (const [store, runs] of bursts) {
  const rs = runs.map((r) => r.result)
  const mints = runs.map((r) => r.mints)
  const ok = mints.every((m) => m === BURST_KEYS)
  rows.push({ label: `burst · ${store}`, cells: ['', ms(rs, 'p50'), ms(rs, 'p99'), '', '', '', '', `mints ${spread(mints, fmt.int)} (expected ${BURST_KEYS}${ok ? '' : ', MISMATCH'})`] })
}
if (misses.length > 0) {
  const up = misses.map((m) => m.upstream)
  const br = misses.map((m) => m.broker)
  const px = misses.map((m) => m.proxy)
  const added = misses.map((m) => m.broker.p50 - m.upstream.p50)
  const own = misses.map((m) => m.broker.p50 - m.proxy.p50)
  rows.push({ section: `a miss: one connection, ${MISSES} sequential requests, each a new key, after ${MISS_WARMUP} unmeasured` })
  rows.push({ label: 'upstream (simulator) alone', cells: ['', ms(up, 'p50'), ms(up, 'p99'), '', '', '', '', ''] })
  const inside = (own: number[], upstream: number[]): string => `inside: ${spread(own, fmt.ms)} ms of its own beyond its upstream call (${spread(upstream, fmt.ms)} ms)`
  rows.push({
    label: 'naive proxy (one upstream call each)',
    cells: ['', ms(px, 'p50'), ms(px, 'p99'), '', '', cpu(px), '', `p50 adds ${spread(misses.map((m) => m.proxy.p50 - m.upstream.p50), fmt.ms)} ms: the hop; ${inside(misses.map((m) => m.proxyOwn), misses.map((m) => m.proxyUpstream))}`],
  })
  rows.push({
    label: 'miss · memory · broker API key',
    cells: [
      '',
      ms(br, 'p50'),
      ms(br, 'p99'),
      '',
      '',
      cpu(br),
      '',
      `p50 adds ${spread(added, fmt.ms)} ms to the upstream's, ${spread(own, fmt.ms)} ms to the proxy's; ${inside(misses.map((m) => m.brokerOwn), misses.map((m) => m.brokerUpstream))}; CPU ${spread(misses.map((m) => m.broker.cpuPerRequest / m.proxy.cpuPerRequest), fmt.ratio)} × the proxy's`,
    ],
  })
}
if (mem !== undefined) {
  rows.push({ section: `memory: the app's token store, ${fmt.int(mem.tokens)} tokens after a warm-up fill, full GC (--expose-gc)` })
  const per100k = (b: number): string => `${(b * 100_000 / 1024 / 1024).toFixed(1)} MiB per 100,000 tokens`
  rows.push({ label: 'live heap per cached token', cells: ['', '', '', '', '', '', '', `${fmt.bytes(mem.heapPerToken)} B; ${per100k(mem.heapPerToken)}`] })
  rows.push({ label: 'RSS per cached token', cells: ['', '', '', '', '', '', '', `${fmt.bytes(mem.rssPerToken)} B; ${per100k(mem.rssPerToken)}`] })
  if (mem.held !== mem.tokens) rows.push({ label: 'tokens still held', cells: ['', '', '', '', '', '', '', `${mem.held} of ${mem.tokens}: the store's bound evicted the rest`] })
}

await stopAll()
await sim.close()
identities.close()
if (redis !== undefined) {
  const keys = await scanKeys(redis, redisPrefix)
  for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500))
  redis.disconnect()
}

const load1 = loadavg().map((l) => l.toFixed(1)).join(' ')
console.log(`\ntiktools-broker bench: node ${process.version} ${NODE_FLAGS.join(' ') || '(no flags)'} (every server, as npm start), ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, load average ${load1}`)
console.log(`median [min–max] of ${REPEATS} repeat(s); latency in ms from the client (autocannon, its own process), loopback;`)
console.log('server CPU µs/req: user + system time of the server process per answered request (/proc), steadier than req/s on a busy machine\n')
console.log(renderTable(['row', 'req/s', 'p50 ms', 'p99 ms', '× bare req/s', 'p99 / bare p99', 'server CPU µs/req', '× bare CPU', 'note'], rows))
console.log('')
if (failures > 0) {
  process.stderr.write(`bench: ${failures} check(s) failed (see above)\n`)
  process.exitCode = 1
}
