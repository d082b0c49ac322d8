import type { Readable } from 'node:stream'

/** The exit codes the usage text documents. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const

/** What a command may touch; injected so tests can also run commands in-process. */
export interface CliIo {
  readonly env: NodeJS.ProcessEnv
  readonly stdin: Readable & { readonly isTTY?: boolean }
  out(text: string): void
  err(text: string): void
}

/** The real process's streams and environment. */
export function processIo(): CliIo {
  return {
    env: process.env,
    stdin: process.stdin,
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
  }
}

/** Bad usage (unknown option, wrong arguments): exit code 2 and a pointer to `--help`. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

/** Parsed arguments of one command. */
export interface CommandArgs {
  readonly help: boolean
  readonly flags: ReadonlySet<string>
  readonly positionals: readonly string[]
}

/** One subcommand: the flags and positional arguments it takes, and what it does. */
export interface Command {
  readonly name: string
  readonly flags: readonly string[]
  /** Names of the required positional arguments, as the usage text spells them. */
  readonly positionals: readonly string[]
  run(args: CommandArgs, io: CliIo): Promise<number>
}

/**
 * Splits a command's arguments into known flags and exactly the positionals
 * it expects; anything else is a {@link UsageError}. Hand-written because
 * `util.parseArgs` messages are long and talk about its own API.
 */
export function parseCommandArgs(command: Command, args: readonly string[]): CommandArgs {
  const flags = new Set<string>()
  const positionals: string[] = []
  let help = false
  let optionsEnded = false
  for (const arg of args) {
    if (optionsEnded || arg === '-' || !arg.startsWith('-')) positionals.push(arg)
    else if (arg === '--') optionsEnded = true
    else if (arg === '--help' || arg === '-h') help = true
    else if (command.flags.includes(arg)) flags.add(arg)
    else throw new UsageError(`${command.name}: unknown option ${arg}`)
  }
  if (help) return { help, flags, positionals }
  const missing = command.positionals.slice(positionals.length)
  if (missing.length > 0) throw new UsageError(`${command.name}: missing ${missing.join(' ')}`)
  const extra = positionals.slice(command.positionals.length)
  if (extra.length > 0) throw new UsageError(`${command.name}: unexpected argument ${extra.join(' ')}`)
  return { help, flags, positionals }
}
