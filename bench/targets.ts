/**
 * Starting a server under test (`bench/target.ts`) from an orchestrator (`run.ts`,
 * `ab.ts`): a process of its own, with the node flags of `npm start`.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { TargetSpec } from './target.js'

/** The V8 flags `npm start` (and the image's NODE_OPTIONS) run the broker with: every server under test gets them. */
export const NODE_FLAGS: readonly string[] = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: { start: string } }).scripts.start
  .split(/\s+/)
  .filter((a) => a.startsWith('--'))

/**
 * Starts a server under test with `env` added to this process's environment: its process at
 * once (to be stopped by whoever started it), and its URL once it prints `READY <url>`
 * (rejected if it exits or closes its output first). Its standard input stays open: the
 * target exits when it closes, so no server outlives the orchestrator.
 */
export function spawnTarget(spec: TargetSpec, env: NodeJS.ProcessEnv = {}): { child: ChildProcess; ready: Promise<string> } {
  const child = spawn(process.execPath, [...NODE_FLAGS, '--import', 'tsx', fileURLToPath(new URL('./target.ts', import.meta.url))], {
    env: { ...process.env, ...env, BENCH_TARGET: JSON.stringify(spec) },
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`bench target ${spec.kind} exited (${String(code)}) before it was ready`)
  })
  const printed = (async () => {
    for await (const line of createInterface({ input: child.stdout as NodeJS.ReadableStream })) if (line.startsWith('READY ')) return line.slice(6)
    throw new Error(`bench target ${spec.kind} closed its output`)
  })()
  // The race handles both: a later exit (the end of the run) is no unhandled rejection.
  return { child, ready: Promise.race([printed, exited]) }
}
