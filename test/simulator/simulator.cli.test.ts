import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { request } from 'undici'
import { optionsFromEnv } from '../../src/simulator/env.js'

const root = fileURLToPath(new URL('../../', import.meta.url))
const main = fileURLToPath(new URL('../../src/simulator/main.ts', import.meta.url))

t.test('optionsFromEnv', async (t) => {
  t.same(optionsFromEnv({}), {
    host: '0.0.0.0',
    port: 8090,
    apiKeys: undefined,
    perMinute: undefined,
    perDay: undefined,
    secret: undefined,
  })
  t.same(
    optionsFromEnv({ SIM_HOST: '127.0.0.1', SIM_PORT: '0', SIM_API_KEYS: 'a, b,,', SIM_PER_MINUTE: '10', SIM_PER_DAY: '50', SIM_SECRET: 's' }),
    { host: '127.0.0.1', port: 0, apiKeys: ['a', 'b'], perMinute: 10, perDay: 50, secret: 's' },
  )
  t.throws(() => optionsFromEnv({ SIM_PER_MINUTE: 'ten' }), /SIM_PER_MINUTE/)
  t.throws(() => optionsFromEnv({ SIM_PORT: '-1' }), /SIM_PORT/)
})

/** Runs the CLI; resolves with the child, its first stdout line and everything it printed. */
async function runCli(env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', main], {
    cwd: root,
    env: { ...process.env, SIM_HOST: '127.0.0.1', SIM_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  const firstLine = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', () => output.includes('\n') && resolve(output.split('\n')[0] as string))
    void exited.then(() => reject(new Error(`exited early: ${output}`)))
  })
  return { child, firstLine, exited, output: () => output }
}

t.test('the CLI serves, logs one line without secrets and exits on SIGTERM', async (t) => {
  const cli = await runCli({ SIM_API_KEYS: 'cli-api-key-123', SIM_SECRET: 'cli-jwt-secret-456' })
  t.teardown(() => void cli.child.kill('SIGKILL'))
  const url = /http:\/\/127\.0\.0\.1:\d+/.exec(cli.firstLine)?.[0]
  t.ok(url, `the line names the URL: ${cli.firstLine}`)

  const res = await request(`${url}/authentication/jwt?apiKey=cli-api-key-123`, { method: 'POST', body: '{}' })
  const body = (await res.body.json()) as { data: { token: string } }
  t.equal(res.statusCode, 200)

  cli.child.kill('SIGTERM')
  const [code] = await cli.exited
  t.equal(code, 0, 'clean exit')
  t.notMatch(cli.output(), 'cli-api-key-123', 'never logs the apiKey')
  t.notMatch(cli.output(), 'cli-jwt-secret-456', 'never logs the secret')
  t.notMatch(cli.output(), body.data.token, 'never logs a token')
})

t.test('the CLI exits cleanly on SIGINT', async (t) => {
  const cli = await runCli({})
  t.teardown(() => void cli.child.kill('SIGKILL'))
  cli.child.kill('SIGINT')
  t.equal((await cli.exited)[0], 0)
})

t.test('the CLI refuses a bad environment, naming the variable', async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', main], {
    cwd: root,
    env: { ...process.env, SIM_PER_DAY: 'lots' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const [code] = (await once(child, 'exit')) as [number | null]
  t.equal(code, 1)
  t.match(stderr, /SIM_PER_DAY/)
})
