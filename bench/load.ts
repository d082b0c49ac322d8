/**
 * The load generator: autocannon in a process of its own (started once by
 * `run.ts`, driven over IPC), so it never shares an event loop with a server
 * under test. Latencies are kept as floats from autocannon's `response`
 * events: its own histogram rounds to whole milliseconds.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import autocannon from 'autocannon'

export interface LoadSpec {
  url: string
  path: string
  method: 'GET' | 'POST'
  headers: Record<string, string>
  body?: string
  connections: number
  /** Seconds to measure, or... */
  durationS?: number
  /** ...a number of requests. */
  amount?: number
  /** Seconds of unmeasured load first (JIT, connection set-up). */
  warmupS?: number
  /** Makes every request's body `{...body, subject: prefix + (n % count)}`: a new subject each time, or a set cycled through. */
  vary?: { prefix: string; count: number }
}

export interface LoadResult {
  ok: number
  failed: number
  seconds: number
  rps: number
  /** Milliseconds. */
  p50: number
  p99: number
}

function percentile(sorted: Float64Array, q: number): number {
  return sorted.length === 0 ? Number.NaN : (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number)
}

function once(spec: LoadSpec, measured: boolean): Promise<LoadResult> {
  const latencies: number[] = []
  let failed = 0
  let n = 0
  const base = spec.body === undefined ? undefined : (JSON.parse(spec.body) as Record<string, unknown>)
  const vary = spec.vary
  const requests =
    vary === undefined || base === undefined
      ? undefined
      : [{ setupRequest: (req: object) => ({ ...req, body: JSON.stringify({ ...base, subject: `${vary.prefix}${n++ % vary.count}` }) }) }]
  const started = performance.now()
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: spec.url + spec.path,
        method: spec.method,
        headers: spec.headers,
        ...(spec.body !== undefined && { body: spec.body }),
        ...(requests !== undefined && { requests }),
        connections: spec.connections,
        ...(measured && spec.amount !== undefined ? { amount: spec.amount } : { duration: measured ? (spec.durationS ?? 5) : (spec.warmupS ?? 0) }),
        timeout: 30,
      },
      (err, result) => {
        if (err) return reject(err)
        const sorted = Float64Array.from(latencies).sort()
        // autocannon rounds its own duration; the rate wants the real one.
        const seconds = (performance.now() - started) / 1000
        failed += result.errors + result.timeouts
        resolve({ ok: sorted.length, failed, seconds, rps: sorted.length / seconds, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) })
      },
    )
    instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
      if (status >= 200 && status < 300) latencies.push(ms)
      else failed += 1
    })
  })
}

/** Runs the warm-up (when asked) and then the measured load. */
export async function load(spec: LoadSpec): Promise<LoadResult> {
  if ((spec.warmupS ?? 0) > 0) await once(spec, false)
  return once(spec, true)
}

/**
 * This module in a process of its own (the load generator never shares an event loop with a
 * server under test or with the orchestrator), and a function that runs one load there.
 */
export function forkLoader(): { child: ChildProcess; load: (spec: LoadSpec) => Promise<LoadResult> } {
  const child = fork(new URL(import.meta.url), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  let nextId = 0
  const run = (spec: LoadSpec): Promise<LoadResult> => {
    const id = nextId++
    return new Promise((resolve, reject) => {
      const onMessage = (msg: { id: number; result?: LoadResult; error?: string }): void => {
        if (msg.id !== id) return
        child.off('message', onMessage)
        if (msg.error !== undefined) reject(new Error(msg.error))
        else resolve(msg.result as LoadResult)
      }
      child.on('message', onMessage)
      child.send({ id, spec })
    })
  }
  return { child, load: run }
}

/** A process's CPU so far, µs: `/proc/PID/stat`'s utime (user mode) and stime (kernel), in clock ticks (100 a second on Linux); NaN where unreadable. */
export function cpuUs(pid: number | undefined): { user: number; sys: number } {
  try {
    // Fields after the command name: utime and stime are the 12th and 13th.
    const fields = readFileSync(`/proc/${String(pid)}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
    return { user: Number(fields[11]) * 10_000, sys: Number(fields[12]) * 10_000 }
  } catch {
    return { user: Number.NaN, sys: Number.NaN }
  }
}

if (process.send !== undefined) {
  process.on('disconnect', () => process.exit(0))
  process.on('message', (msg: { id: number; spec: LoadSpec }) => {
    load(msg.spec).then(
      (result) => process.send?.({ id: msg.id, result }),
      (err: Error) => process.send?.({ id: msg.id, error: err.message }),
    )
  })
}
