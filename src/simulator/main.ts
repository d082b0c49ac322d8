/**
 * Runs the simulator standalone (docker-compose demo, benchmarks, manual dev),
 * configured from the environment (see `optionsFromEnv`). Logs one line with
 * its URL and never an apiKey, token or secret.
 */
import { optionsFromEnv } from './env.js'
import { startSimulator } from './index.js'

async function main(): Promise<void> {
  const options = optionsFromEnv(process.env)
  const sim = await startSimulator(options)
  process.stdout.write(`tik.tools simulator listening at ${sim.url} (WebSocket ${sim.wsUrl}, bound to ${options.host})\n`)
  const stop = (): void => {
    sim.close().then(
      () => process.exit(0),
      (err: unknown) => fail(`close failed: ${messageOf(err)}`),
    )
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function fail(message: string): never {
  process.stderr.write(`simulator: ${message}\n`)
  process.exit(1)
}

main().catch((err: unknown) => fail(messageOf(err)))
