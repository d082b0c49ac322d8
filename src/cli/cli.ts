import { checkConfigCommand } from './check-config.js'
import { EXIT, parseCommandArgs, UsageError, type CliIo, type Command } from './io.js'
import { hashKeyCommand, newKeyCommand } from './keys.js'
import { USAGE } from './usage.js'

const COMMANDS: ReadonlyMap<string, Command> = new Map(
  [checkConfigCommand, hashKeyCommand, newKeyCommand].map((c) => [c.name, c]),
)

const HELP_HINT = "Run 'tiktools-broker --help' for usage.\n"

/** Runs one command line (without `node` and the script) and returns the exit code; never throws. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv
  if (name === '--help' || name === '-h' || name === 'help') {
    io.out(USAGE)
    return EXIT.ok
  }
  if (name === undefined) {
    io.err(USAGE)
    return EXIT.usage
  }
  const command = COMMANDS.get(name)
  if (command === undefined) {
    io.err(`tiktools-broker: unknown command '${name}'\n${HELP_HINT}`)
    return EXIT.usage
  }
  try {
    const args = parseCommandArgs(command, rest)
    if (args.help) {
      io.out(USAGE)
      return EXIT.ok
    }
    return await command.run(args, io)
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`tiktools-broker: ${err.message}\n${HELP_HINT}`)
      return EXIT.usage
    }
    // An operator tool reports, it does not dump a stack.
    io.err(`tiktools-broker: ${name}: ${err instanceof Error ? err.message : String(err)}\n`)
    return EXIT.failure
  }
}
