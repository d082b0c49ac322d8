/**
 * One server under test, in a process of its own so that the load generator
 * never shares its event loop. Started by `run.ts` with `BENCH_TARGET` (JSON):
 *   - `bare`:   plain Fastify answering the token POST with a constant ~400-byte JSON body
 *   - `naive`:  plain Fastify calling the upstream on every request (what one would write without a broker)
 *   - `broker`: the broker, on the memory store, or on Redis when `redisUrl` is given
 * The broker runs from `dist/` (what `npm start` runs; `npm run bench` builds
 * first), so a profile names real lines. Prints `READY <url>` once listening;
 * SIGTERM closes it. With `profileDir`, the V8 CPU profiler (what `--cpu-prof`
 * drives) records from READY to SIGTERM: the load, not the start-up.
 */
import diagnostics from 'node:diagnostics_channel'
import type { ServerResponse } from 'node:http'
import { writeFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import { pino } from 'pino'
import { benchConfig, UPSTREAM_KEY } from './fixtures.js'

// BENCH_DIST: another build to measure (an earlier commit's dist/, for before/after).
const distDir = process.env.BENCH_DIST === undefined ? new URL('../dist/', import.meta.url) : new URL(`file://${process.env.BENCH_DIST.replace(/\/?$/, '/')}`)
const dist = (file: string): string => new URL(file, distDir).href
const { buildApp } = (await import(dist('app.js'))) as typeof import('../src/app.js')
// A build from before per-turn log writes has no TurnBufferedDestination.
const { createLogger, TurnBufferedDestination } = (await import(dist('logger.js'))) as Omit<typeof import('../src/logger.js'), 'TurnBufferedDestination'> &
  Partial<Pick<typeof import('../src/logger.js'), 'TurnBufferedDestination'>>
const { createState } = (await import(dist('state/index.js'))) as typeof import('../src/state/index.js')

export interface TargetSpec {
  kind: 'bare' | 'naive' | 'broker'
  upstreamUrl: string
  jwksUrl: string
  redisUrl?: string
  keyPrefix?: string
  /** Where to write a CPU profile of this process under load. */
  profileDir?: string
}

/** A token answer's shape and size, with a JWT like tik.tools' (~300 bytes). */
const CONSTANT_ANSWER = {
  status_code: 0,
  data: {
    token: `eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.${'x'.repeat(230)}.${'s'.repeat(43)}`,
    expires_at: 1764100000,
    expire_after: 600,
    allowed_creators: ['streamer1'],
    max_websockets: 1,
    cached: true,
  },
}

function bare(): FastifyInstance {
  const app = Fastify()
  app.post('/v1/token', async () => CONSTANT_ANSWER)
  return app
}

function naive(upstreamUrl: string): FastifyInstance {
  const app = Fastify()
  const url = `${upstreamUrl}/authentication/jwt?apiKey=${UPSTREAM_KEY}`
  app.post('/v1/token', async (_request, reply) => {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ expire_after: 600, max_websockets: 1, allowed_creators: ['streamer1'] }),
    })
    const answer = (await res.json()) as { data?: { token?: string } }
    reply.header('cache-control', 'no-store')
    return { status_code: 0, data: { token: answer.data?.token, expire_after: 600, allowed_creators: ['streamer1'], max_websockets: 1, cached: false } }
  })
  return app
}

const spec = JSON.parse(process.env.BENCH_TARGET ?? '{}') as TargetSpec
let app: FastifyInstance
let closeState = async (): Promise<void> => {}
if (spec.kind === 'bare') app = bare()
else if (spec.kind === 'naive') app = naive(spec.upstreamUrl)
else {
  // Production logs at info to standard output, in few writes (logger.ts); here the same lines, written the same
  // way, go to /dev/null, or to BENCH_LOG_FILE (a FIFO with a reader stands in for a container's stdout pipe). A
  // build from before that change writes each line as it did then.
  const out = pino.destination({ dest: process.env.BENCH_LOG_FILE ?? '/dev/null', sync: true })
  const logger = createLogger('info', TurnBufferedDestination === undefined ? out : new TurnBufferedDestination(out))
  const config = benchConfig(spec.upstreamUrl, spec.jwksUrl, spec.redisUrl)
  const state = await createState(config, logger, { keyPrefix: spec.keyPrefix ?? 'tkb:bench:' })
  app = await buildApp(config, {
    logger,
    store: state.store,
    counters: state.counters,
    rateLimitStore: state.rateLimitStore,
    readiness: state.readiness,
    ...(state.overrides !== undefined && { overrides: state.overrides }),
  })
  closeState = () => state.close()
}
await app.listen({ host: '127.0.0.1', port: 0 })
const { port } = app.server.address() as { port: number }
let profiler: Session | undefined
if (spec.profileDir !== undefined) {
  profiler = new Session()
  profiler.connect()
  await profiler.post('Profiler.enable')
  await profiler.post('Profiler.setSamplingInterval', { interval: 100 })
  await profiler.post('Profiler.start')
}
process.stdout.write(`READY http://127.0.0.1:${port}\n`)

async function stop(): Promise<void> {
  if (profiler !== undefined) {
    const { profile } = await profiler.post('Profiler.stop')
    const name = `${spec.kind}${spec.redisUrl === undefined ? '' : '-redis'}-${process.pid}.cpuprofile`
    await writeFile(`${spec.profileDir as string}/${name}`, JSON.stringify(profile))
  }
  await app.close()
  await closeState()
}
process.once('SIGTERM', () => void stop().finally(() => process.exit(0)))

/**
 * Inside timing of sequential requests, for the misses: the first SIGUSR2
 * subscribes to Node's HTTP server channels and undici's request channels
 * (node:diagnostics_channel; npm undici and the fetch built into Node publish
 * on the same names) and writes `[]` to `BENCH_TIMING_FILE`; the next writes
 * there one `[server ms, upstream ms]` per answered request and unsubscribes.
 * Server ms runs from the request's headers parsed to its answer handed to
 * the socket; upstream ms from each upstream request created to its last
 * byte received. Nothing is subscribed outside a recording, so the hit rows
 * pay nothing for it. Meant for one connection at a time: each answer takes
 * the upstream time recorded since its request arrived.
 */
const timingFile = process.env.BENCH_TIMING_FILE
if (timingFile !== undefined) {
  let recording: (() => Array<[number, number]>) | undefined
  process.on('SIGUSR2', () => {
    if (recording !== undefined) {
      writeFileSync(timingFile, JSON.stringify(recording()))
      recording = undefined
    } else {
      recording = recordTiming()
      writeFileSync(timingFile, '[]')
    }
  })
}

function recordTiming(): () => Array<[number, number]> {
  const samples: Array<[number, number]> = []
  let upstreamSince = 0
  let upstreamMs = 0
  const handlers: Record<string, (message: unknown) => void> = {
    'http.server.request.start': (m) => {
      const since = performance.now()
      upstreamMs = 0
      // 'prefinish': the answer's last bytes handed to the socket, inside `end()`. Not 'finish' (Node's
      // `http.server.response.finish`), which comes a tick later and, in the broker, after the rest of its
      // turn's end: the log lines and the audit line, which the client does not wait for (http/turn-end.ts).
      ;(m as { response: ServerResponse }).response.once('prefinish', () => samples.push([performance.now() - since, upstreamMs]))
    },
    'undici:request:create': () => (upstreamSince = performance.now()),
    'undici:request:trailers': () => (upstreamMs += performance.now() - upstreamSince),
  }
  for (const [name, handler] of Object.entries(handlers)) diagnostics.subscribe(name, handler)
  return () => {
    for (const [name, handler] of Object.entries(handlers)) diagnostics.unsubscribe(name, handler)
    return samples
  }
}
// The orchestrator holds our stdin: when it goes away, however it died, so do we.
process.stdin.on('end', () => process.exit(0)).resume()
