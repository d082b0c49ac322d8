import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import t from 'tap'
import { DIST_MAIN } from '../helpers/process.js'

/** Runs the built server with only `env` (and PATH); answers its exit code and everything it printed. */
async function start(env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, [DIST_MAIN.pathname], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d) => (out += String(d)))
  child.stderr.on('data', (d) => (out += String(d)))
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  return { code, out }
}

t.test('an UPSTREAM_URL that is no URL at all: one message naming it, exit 1, no stack trace', async (t) => {
  for (const url of ['notaurl', 'http://[::1', 'http:// x']) {
    const { code, out } = await start({ TIKTOOLS_API_KEY: 'tt-key', UPSTREAM_URL: url, HOST: '127.0.0.1', PORT: '0' })
    t.equal(code, 1, `${url}: exit 1`)
    t.equal(out, 'tiktools-broker: invalid configuration\n  UPSTREAM_URL: Invalid URL\n', `${url}: the message alone`)
  }
})

t.test('a HOST or PORT it cannot listen on: one line naming both and the reason, exit 1, no stack trace', async (t) => {
  const taken = createServer()
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
  t.teardown(() => taken.close())
  const port = String((taken.address() as { port: number }).port)
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ HOST: '127.0.0.1', PORT: port }, new RegExp(`^tiktools-broker: cannot listen on HOST=127\\.0\\.0\\.1 PORT=${port}: EADDRINUSE \\(`, 'm')],
    [{ HOST: 'no-such-host.invalid', PORT: '0' }, /^tiktools-broker: cannot listen on HOST=no-such-host\.invalid PORT=0: (ENOTFOUND|EAI_AGAIN) \(/m],
  ]
  for (const [env, message] of cases) {
    const { code, out } = await start({ TIKTOOLS_API_KEY: 'tt-key', AUTH_JWT_SECRET: 'a-secret-of-thirty-two-bytes-at-least', ...env })
    t.equal(code, 1, `${JSON.stringify(env)}: exit 1`)
    t.match(out, message)
    t.notMatch(out, /\n\s+at /, 'no stack trace')
  }
})
