#!/usr/bin/env node
import { runCli } from './cli.js'
import { EXIT, processIo } from './io.js'

// A closed pipe (`… | head`) or any stray error ends the tool quietly, never with a stack.
process.stdout.on('error', () => process.exit(EXIT.failure))
process.on('uncaughtException', (err: unknown) => {
  process.stderr.write(`tiktools-broker: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(EXIT.failure)
})

process.exitCode = await runCli(process.argv.slice(2), processIo())
