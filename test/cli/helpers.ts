import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { runCli } from '../../src/cli/cli.js'
import type { CliIo } from '../../src/cli/io.js'

/** The compiled tool, as `npm run build` leaves it and the package's `bin` points at it. */
export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url))

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

/**
 * Runs `node dist/cli/main.js ...args` with `input` on stdin (always ended,
 * so a command reading stdin cannot hang). `env` entries set to undefined are
 * removed from the inherited environment.
 */
export async function runCliProcess(
  args: readonly string[],
  options: { input?: string; env?: Record<string, string | undefined> } = {},
): Promise<CliResult> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` before these tests`)
  // As an operator runs it: without the loaders tap puts in NODE_OPTIONS.
  const env: Record<string, string | undefined> = { ...process.env, NODE_OPTIONS: undefined, ...options.env }
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k]
  const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  child.stdin.on('error', () => {}) // the tool may stop reading early (an over-long key)
  child.stdin.end(options.input ?? '')
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', resolve)
  })
  return { code, stdout, stderr }
}

/** Runs the CLI in-process with captured output, for cases a real process cannot set up (a TTY stdin). */
export async function runCliInProcess(
  args: readonly string[],
  options: { input?: string; isTTY?: boolean; env?: NodeJS.ProcessEnv } = {},
): Promise<CliResult> {
  const result = { code: null as number | null, stdout: '', stderr: '' }
  const stdin = Object.assign(Readable.from([Buffer.from(options.input ?? '')]), { isTTY: options.isTTY ?? false })
  const io: CliIo = {
    env: options.env ?? {},
    stdin,
    out: (text) => void (result.stdout += text),
    err: (text) => void (result.stderr += text),
  }
  result.code = await runCli(args, io)
  return result
}

/** A temporary folder removed at the test's teardown. */
export async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tkb-cli-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** Writes `text` to `name` in a fresh temporary folder and returns its path. */
export async function tempFile(t: Test, name: string, text: string): Promise<string> {
  const file = join(await tempDir(t), name)
  await writeFile(file, text)
  return file
}

/** Matches a Node stack frame, which the tool must never print. */
export const STACK_FRAME = /^\s+at .+[:(]/m
