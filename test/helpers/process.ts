import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createServer } from 'node:net'
import type { Test } from 'tap'

export const DIST_MAIN = new URL('../../dist/main.js', import.meta.url)

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
    s.on('error', reject)
  })
}

export interface BrokerProcess {
  child: ChildProcess
  url: string
  output: () => string
  exited: Promise<number | null>
}

/**
 * Runs the compiled server (`node dist/main.js`) with an environment, and
 * waits until it answers /healthz. Fails (never skips) when dist/ is missing.
 */
export async function startBrokerProcess(t: Test, env: Record<string, string>): Promise<BrokerProcess> {
  if (!existsSync(DIST_MAIN)) throw new Error('dist/main.js is missing: run `npm run build` first (npm test does)')
  const port = await freePort()
  let out = ''
  const child = spawn(process.execPath, [DIST_MAIN.pathname], {
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  child.stdout?.on('data', (d) => (out += String(d)))
  child.stderr?.on('data', (d) => (out += String(d)))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 15_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`broker exited early (${child.exitCode}):\n${out}`)
    try {
      if ((await fetch(`${url}/healthz`)).ok) return { child, url, output: () => out, exited }
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`broker did not become healthy:\n${out}`)
}
