/**
 * A bounded soak of the whole service on loopback: two replicas of the
 * compiled broker sharing their own Redis, in front of the simulator, at a
 * steady rate of cache hits, misses and bad requests, through upstream faults
 * and one Redis restart. Prints totals and exits 1 when one is wrong.
 *
 *   npm run soak                      # 3 minutes
 *   npm run soak -- --seconds 20      # the run `npm test` makes
 *   npm run soak -- --logs DIR        # also keep each process's whole output in DIR
 *
 * The replicas log at `--log-level` (default info, as in production): a
 * replica's "redis available again" is an info line, and it ends the period
 * in which a cached key may miss on that replica (see soak-cache-check.ts).
 *
 * Needs `npm run build` (the script does it) and `redis-server` on the PATH.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once, setMaxListeners } from 'node:events'
import { readFileSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { freePort, spawnRedisServer } from '../test/helpers/redis.js'
import { degradedPeriods, judgeCachedKeys, logEntries, outageReports, type Period, type TokenAnswer } from './soak-cache-check.js'
import {
  BAD_KINDS, isContractError, keyOf, send, tokenProblem, TENANTS_YAML, userJwt, USER_SECRET, wantedFor, type Wanted,
} from './soak-traffic.js'

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '180' }, rate: { type: 'string', default: '60' }, 'log-level': { type: 'string', default: 'info' }, logs: { type: 'string' } },
})
const SECONDS = Number(values.seconds)
const RATE = Number(values.rate)
if (!(SECONDS >= 5) || !(RATE >= 1)) {
  process.stderr.write('usage: soak [--seconds N (>= 5, default 180)] [--rate requests/s (default 60)]\n')
  process.exit(2)
}
// Hanging upstream answers each wait on the simulator's close signal.
setMaxListeners(10_000)
const API_KEY = 'tt-soak-api-key-0123456789abcdef'
const SIM_SECRET = 'soak-simulator-secret-0123456789abcdef'
const DIST_MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const DIST_SIMULATOR = fileURLToPath(new URL('../dist/simulator/main.js', import.meta.url))
const HOT_SUBJECTS = 40
/** After a fault window ends, the circuit breaker may stay open this long (10 s) plus an upstream timeout. */
const FAULT_GRACE_MS = 15_000

interface Replica {
  url: string
  child: ChildProcess
  output: string
  /** `r0`, `r1` (or `sim`), as the diagnostics name it. */
  name: string
}

function rssMiB(pid: number | undefined): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  return Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024)
}

/** A compiled server in its own process (so the load generator's CPU never delays it), once `ready` answers 200. */
async function startProcess(main: string, env: NodeJS.ProcessEnv, ready: string, name: string): Promise<Replica> {
  const port = await freePort()
  const child = spawn(process.execPath, [main], { env: { ...env, PORT: String(port), SIM_PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] })
  const replica: Replica = { url: `http://127.0.0.1:${port}`, child, output: '', name }
  child.stdout?.on('data', (d) => (replica.output += d))
  child.stderr?.on('data', (d) => (replica.output += d))
  const deadline = Date.now() + 15_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`a replica exited with ${child.exitCode}:\n${replica.output}`)
    if (await fetch(`${replica.url}${ready}`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false)) return replica
    if (Date.now() > deadline) {
      child.kill('SIGKILL') // never left running after the soak gives up on it
      throw new Error(`a replica did not get ready:\n${replica.output}`)
    }
    await sleep(50)
  }
}

async function stopReplica(r: Replica): Promise<void> {
  if (r.child.exitCode !== null) return
  const exited = once(r.child, 'exit')
  r.child.kill('SIGTERM')
  const timer = setTimeout(() => r.child.kill('SIGKILL'), 20_000)
  await exited
  clearTimeout(timer)
}

const replicas: Replica[] = []
const totals = {
  requests: 0, ok: 0, hits: 0, misses: 0, bad: 0,
  status5xx: 0, internal500: 0, upstream5xxInFaults: 0, unexplained5xx: 0,
  wrongTokens: 0, unexpectedAnswers: 0, transportErrors: 0, tokenShared: 0, cachedNotServed: 0, cachedNotServedRedisSlow: 0,
}
/** Every answer to a token request, judged once the run is over against what the replicas logged. */
const answers: TokenAnswer[] = []

/**
 * For the first few cached keys that were not served: every answer the key
 * got, and what the replica that did not serve it logged around that time
 * (its request lines left out).
 */
function diagnoseNotServed(notServed: TokenAnswer[], degraded: Map<string, Period[]>, started: number): string {
  const rel = (ms: number) => `+${ms - started} ms`
  const what = (a: TokenAnswer) =>
    `${rel(a.sentAt)}..${rel(a.doneAt)} ${a.replica}: ${a.status === 200 ? (a.cached === true ? '200 hit' : '200 minted or coalesced') : `${a.status} ${a.code}`}` +
    `${a.sameEpoch ? '' : ' (across the Redis restart)'}${(degraded.get(a.replica) ?? []).some(([f, t]) => a.doneAt >= f && a.sentAt <= t) ? ' (replica in local state)' : ''}`
  let out = ''
  for (const n of notServed.slice(0, 8)) {
    out += `  not served: ${n.key} ${what(n)}\n    every answer for this key:\n`
    for (const a of answers.filter((x) => x.key === n.key)) out += `      ${what(a)}\n`
    const output = replicas.find((r) => r.name === n.replica)?.output ?? ''
    const near = logEntries(output).filter((e) => e.time >= n.sentAt - 3000 && e.time <= n.doneAt + 1000 && e.msg !== 'request')
    out += `    ${n.replica} logged ${near.length} lines from ${rel(n.sentAt - 3000)} to ${rel(n.doneAt + 1000)}${near.length > 15 ? ' (first 15)' : ''}:\n`
    for (const e of near.slice(0, 15)) out += `      ${rel(e.time)} ${e.line.slice(0, 300)}\n`
  }
  return out
}
const problems: string[] = []
const note = (what: string) => (problems.length < 20 ? problems.push(what) : undefined)

const sim = await startProcess(DIST_SIMULATOR, {
  PATH: process.env.PATH, SIM_HOST: '127.0.0.1', SIM_API_KEYS: API_KEY, SIM_PER_MINUTE: '1000000', SIM_PER_DAY: '100000000', SIM_SECRET,
}, '/__sim/stats', 'sim')
const simStats = async () => (await (await fetch(`${sim.url}/__sim/stats`)).json()) as { requests: number; mints: number; failures: number }
/** Upstream calls a replica gave up on (timeouts): the simulator may still have minted for them. */
async function timedOutCalls(r: Replica): Promise<number> {
  const text = await (await fetch(`${r.url}/metrics`)).text()
  return [...text.matchAll(/^tiktools_broker_upstream_mints_total\{[^}]*status="timeout"[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0)
}
const redis = await spawnRedisServer()
const dir = await mkdtemp(join(tmpdir(), 'tkb-soak-'))
const tenantsFile = join(dir, 'tenants.yaml')
await writeFile(tenantsFile, TENANTS_YAML)
const env: NodeJS.ProcessEnv = {
  PATH: process.env.PATH,
  TIKTOOLS_API_KEY: API_KEY,
  UPSTREAM_URL: sim.url,
  UPSTREAM_TIMEOUT_MS: '2500',
  TENANTS_FILE: tenantsFile,
  SOAK_USER_SECRET: USER_SECRET,
  REDIS_URL: redis.url,
  HOST: '127.0.0.1',
  LOG_LEVEL: values['log-level'],
}
let exitCode = 1
try {
  // One at a time into the list, so that the first is stopped at the end even when the second does not start.
  for (const name of ['r0', 'r1']) replicas.push(await startProcess(DIST_MAIN, env, '/readyz', name))
  const rssStart = replicas.map((r) => rssMiB(r.child.pid))
  const simSecret = new TextEncoder().encode(SIM_SECRET)
  const started = Date.now()
  const at = (fraction: number) => started + SECONDS * 1000 * fraction

  // Fault windows (simulator modes) and the Redis restart, apart from each other.
  const faults: Array<{ from: number; to: number; mode: string }> = [
    { from: at(0.15), to: at(0.22), mode: 'error500' },
    { from: at(0.4), to: at(0.45), mode: 'malformed' },
    { from: at(0.8), to: at(0.85), mode: 'hang' },
  ]
  const restartAt = at(0.6)
  const inFaultWindow = (t0: number, t1: number) => faults.some((f) => t1 >= f.from && t0 <= f.to + FAULT_GRACE_MS)

  const minted = new Map<string, string>() // grant key -> subject, for each key that got a token
  // A key whose token is in the shared cache must be served, upstream faults or not (judgeCachedKeys, after the run).
  // The Redis restart empties that cache: the epoch moves when Redis goes and once it is back.
  let epoch = 0 // answers across a move are not judged
  let sharing = true // false while Redis is restarting: a replica's tokens are then its own
  let restart: Period | undefined // from the kill until sharing again
  const tokenOwner = new Map<string, string>()
  let keysBeforeRestart = -1
  let missSeq = 0
  let i = 0

  const scenario = (async () => {
    for (const f of faults) {
      await sleep(Math.max(0, f.from - Date.now()))
      await fetch(`${sim.url}/__sim/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ mode: f.mode }) })
      await sleep(Math.max(0, f.to - Date.now()))
      await fetch(`${sim.url}/__sim/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ mode: 'ok' }) })
      if (f.mode === 'malformed') {
        await sleep(Math.max(0, restartAt - Date.now()))
        keysBeforeRestart = minted.size
        const killedAt = Date.now()
        epoch++
        sharing = false
        await redis.kill()
        await sleep(2000)
        await redis.start()
        await sleep(3000) // every replica has reconnected: what it mints now is shared again
        epoch++
        sharing = true
        restart = [killedAt, Date.now()]
      }
    }
  })()

  async function tokenRequest(subject: string, wanted: Wanted, kind: 'hit' | 'miss', replica: Replica): Promise<void> {
    const base = replica.url
    const sentAt = Date.now()
    const key = keyOf(subject, wanted)
    const sentEpoch = epoch
    const body = JSON.stringify({ allowed_creators: wanted.creators, max_websockets: wanted.maxWebsockets, expire_after: wanted.expireAfter })
    const res = await send(base, '/v1/token', { authorization: `Bearer ${await userJwt(subject)}`, 'content-type': 'application/json' }, body)
    const doneAt = Date.now()
    totals[kind === 'hit' ? 'hits' : 'misses']++
    answers.push({
      key, replica: replica.name, sentAt, doneAt, status: res.status, code: res.body?.code, cached: res.body?.data?.cached,
      epoch: sentEpoch, sameEpoch: epoch === sentEpoch, sharing,
    })
    if (res.status === 0) return void (totals.transportErrors++, note(`transport error: ${res.body}`))
    if (res.status >= 500) {
      totals.status5xx++
      if (res.status === 500 || !isContractError(res.body, res.status)) totals.internal500++
      else if (inFaultWindow(sentAt, doneAt)) totals.upstream5xxInFaults++
      else totals.unexplained5xx++
      if (res.status === 500 || !inFaultWindow(sentAt, doneAt)) note(`${res.status} ${JSON.stringify(res.body)} at +${sentAt - started} ms`)
      return
    }
    if (res.status !== 200) return void (totals.unexpectedAnswers++, note(`${kind} got ${res.status} ${JSON.stringify(res.body)}`))
    totals.ok++
    const problem = await tokenProblem(res.body, wanted, simSecret, doneAt)
    const token = res.body?.data?.token as string | undefined
    const owner = token === undefined ? undefined : tokenOwner.get(token)
    if (token !== undefined && owner === undefined) tokenOwner.set(token, subject)
    if (owner !== undefined && owner !== subject) totals.tokenShared++
    if (problem !== undefined || (owner !== undefined && owner !== subject)) {
      totals.wrongTokens++
      note(`wrong token for ${subject}: ${problem ?? `served to ${owner} too`}`)
    }
    minted.set(key, subject)
  }

  async function badRequest(n: number, base: string): Promise<void> {
    const kind = BAD_KINDS[n % BAD_KINDS.length]!
    const { path, headers, body } = await kind.build()
    const res = await send(base, path, headers, body)
    totals.bad++
    if (res.status >= 500) {
      totals.status5xx++
      totals.internal500++
    }
    const cors = kind.name.includes('browser') ? res.headers['access-control-allow-origin'] !== undefined : true
    if (res.status !== kind.status || !isContractError(res.body, kind.status) || res.body.code !== kind.code || !cors) {
      totals.unexpectedAnswers++
      note(`${kind.name}: ${res.status} ${typeof res.body === 'string' ? res.body.slice(0, 80) : JSON.stringify(res.body)}`)
    }
  }

  // Steady rate: request i is due at started + i / RATE, whatever the answers take.
  const deadline = started + SECONDS * 1000
  const pending = new Set<Promise<void>>()
  while (Date.now() < deadline) {
    const due = started + (i * 1000) / RATE
    if (due > Date.now()) await sleep(due - Date.now())
    const n = i++
    // Not n % 2: that would pin each repeat subject to one replica.
    const replica = replicas[Math.floor(n / 3) % replicas.length]!
    const roll = (n * 37) % 100
    const work =
      roll < 55 ? tokenRequest(`hot-${n % HOT_SUBJECTS}`, wantedFor(n % HOT_SUBJECTS), 'hit', replica)
      : roll < 75 ? tokenRequest(`new-${missSeq}`, wantedFor(missSeq++), 'miss', replica)
      : badRequest(n, replica.url)
    totals.requests++
    const p = work.catch((err: Error) => void note(`soak bug: ${err.stack}`)).finally(() => pending.delete(p))
    pending.add(p)
  }
  await Promise.all(pending)
  await scenario
  const rssEnd = replicas.map((r) => rssMiB(r.child.pid))
  // A cached key may miss on a replica that works from local state (Redis slow or away): documented, and said in its log.
  const degraded = new Map(replicas.map((r) => [r.name, degradedPeriods(r.output, Date.now())]))
  const { notServed, excused } = judgeCachedKeys(answers, degraded)
  totals.cachedNotServed = notServed.length
  totals.cachedNotServedRedisSlow = excused.length
  for (const n of notServed) note(`cached key not served: ${n.key} via ${n.replica}: ${n.status} ${n.code} at +${n.sentAt - started} ms`)
  // Only the restart takes Redis away here: any other report of it slow or away is a misjudgement (a replica whose own
  // event loop stalled took a healthy Redis for a slow one) that leaves cached keys unserved; it fails the run.
  const outsideRestart = (time: number) => restart === undefined || time < restart[0] || time > restart[1]
  let outagesOutsideRestart = 0
  for (const r of replicas) {
    for (const e of outageReports(r.output).filter((e) => outsideRestart(e.time))) {
      outagesOutsideRestart++
      note(`${r.name} at +${e.time - started} ms: ${e.line.slice(0, 300)}`)
    }
  }
  const diagnosis = diagnoseNotServed(notServed, degraded, started)

  const elapsed = (Date.now() - started) / 1000

  const stats = await simStats()
  // Each key needs one mint; the Redis restart empties the shared cache, so a key minted before it may be minted
  // again by each replica while Redis is away and once after it is back; a call a replica gave up on (timeout)
  // may have minted all the same.
  const timeouts = (await Promise.all(replicas.map(timedOutCalls))).reduce((a, b) => a + b, 0)
  const allowedMints = minted.size + 3 * Math.max(0, keysBeforeRestart) + timeouts
  const logs = replicas.map((r) => r.output).join('')
  const secretsInLogs = [API_KEY, USER_SECRET, SIM_SECRET].filter((s) => logs.includes(s)).length +
    [...tokenOwner.keys()].filter((tok) => logs.includes(tok)).length
  const rssGrowthOk = rssEnd.every((end, k) => end <= (rssStart[k] as number) + 200)

  const rows: Array<[string, string | number, boolean]> = [
    ['seconds', elapsed.toFixed(1), true],
    ['requests (steady rate)', `${totals.requests} at ${RATE}/s`, totals.requests >= SECONDS * RATE * 0.9],
    ['  token requests: repeat subjects / new subjects', `${totals.hits} / ${totals.misses}`, true],
    ['  bad requests (each its contract 4xx)', totals.bad, true],
    ['200 answers', totals.ok, totals.ok > 0],
    ['5xx', totals.status5xx, true],
    ['  500 or without the contract body (must be 0)', totals.internal500, totals.internal500 === 0],
    ['  502/503 during an upstream fault (expected)', totals.upstream5xxInFaults, true],
    ['  502/503 outside any fault window (must be 0)', totals.unexplained5xx, totals.unexplained5xx === 0],
    ['unexpected answers (must be 0)', totals.unexpectedAnswers, totals.unexpectedAnswers === 0],
    ['transport errors (must be 0)', totals.transportErrors, totals.transportErrors === 0],
    ['wrong tokens (must be 0)', totals.wrongTokens, totals.wrongTokens === 0],
    ['cached keys not served, faults or not (must be 0)', totals.cachedNotServed, totals.cachedNotServed === 0],
    ['  ... while their replica reported Redis slow or away (fallback)', totals.cachedNotServedRedisSlow, true],
    ['replica reports of Redis slow or away outside the restart (must be 0)', outagesOutsideRestart, outagesOutsideRestart === 0],
    ['distinct keys served', minted.size, true],
    ['upstream calls: total / minted / failed', `${stats.requests} / ${stats.mints} / ${stats.failures}`, true],
    [`upstream mints <= keys + 3 x ${Math.max(0, keysBeforeRestart)} keys before the Redis restart + ${timeouts} timed out`, `${stats.mints} <= ${allowedMints}`, stats.mints <= allowedMints],
    ['Redis restarted', keysBeforeRestart >= 0 ? 'yes' : 'no', keysBeforeRestart >= 0],
    ['secrets or tokens in logs (must be 0)', secretsInLogs, secretsInLogs === 0],
    ['RSS MiB per replica, start -> end', rssStart.map((s, k) => `${s} -> ${rssEnd[k]}`).join(', '), rssGrowthOk],
  ]
  const width = Math.max(...rows.map(([k]) => k.length))
  for (const [k, v, ok] of rows) process.stdout.write(`${ok ? ' ' : '!'} ${k.padEnd(width)}  ${v}\n`)
  for (const p of problems) process.stdout.write(`  problem: ${p}\n`)
  if (diagnosis !== '') process.stdout.write(diagnosis)
  const failed = rows.filter(([, , ok]) => !ok).map(([k]) => k)
  process.stdout.write(`SOAK_TOTALS ${JSON.stringify({ ...totals, outagesOutsideRestart, distinctKeys: minted.size, upstream: stats, allowedMints, secretsInLogs, rssStart, rssEnd, failed })}\n`)
  process.stdout.write(failed.length === 0 ? 'soak: OK\n' : `soak: FAILED (${failed.join('; ')})\n`)
  exitCode = failed.length === 0 ? 0 : 1
} catch (err) {
  process.stderr.write(`soak: could not run: ${(err as Error).stack}\n`)
} finally {
  await Promise.all(replicas.map(stopReplica))
  await redis.kill()
  await stopReplica(sim)
  // --logs DIR keeps each process's whole output, for a failure the summary does not explain.
  if (values.logs !== undefined) {
    await mkdir(values.logs, { recursive: true })
    for (const p of [...replicas, sim]) await writeFile(join(values.logs, `${p.name}.log`), p.output)
  }
  await rm(dir, { recursive: true, force: true })
}
process.exit(exitCode)
