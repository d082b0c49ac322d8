import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import t from 'tap'
import { freePort } from '../helpers/process.js'

const DIST_DEV = new URL('../../dist/dev.js', import.meta.url)

t.test('npm run dev prints a curl that returns a browser-ready token', async (t) => {
  if (!existsSync(DIST_DEV)) throw new Error('dist/dev.js is missing: run `npm run build` first (npm test does)')
  const [port, simPort] = [await freePort(), await freePort()]
  const child = spawn(process.execPath, [DIST_DEV.pathname], {
    env: { PATH: process.env.PATH ?? '', PORT: String(port), SIM_PORT: String(simPort), LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout.on('data', (d) => (out += String(d)))
  child.stderr.on('data', (d) => (out += String(d)))
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  const deadline = Date.now() + 15_000
  while (!out.includes('Demo page:') && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 25))
  t.match(out, new RegExp(`curl -s -X POST http://127\\.0\\.0\\.1:${port}/v1/token`))

  // Run what the banner says to run.
  const jwt = /Authorization: Bearer (eyJ[\w-]+\.[\w-]+\.[\w-]+)'/.exec(out)?.[1]
  const body = /-d '(\{"allowed_creators"[^']+)'/.exec(out)?.[1]
  t.ok(jwt !== undefined && body !== undefined, 'the banner has a JWT and a body')
  const res = await fetch(`http://127.0.0.1:${port}/v1/token`, {
    method: 'POST',
    headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' },
    body,
  })
  t.equal(res.status, 200)
  const { data } = (await res.json()) as { data: { token: string; allowed_creators: string[] } }
  t.same(data.allowed_creators, ['streamer1'])
  t.ok(res.headers.get('x-ratelimit-remaining') !== null, 'with the upstream headers')

  const backendKey = /Authorization: Bearer (tkb_[\w-]+)'/.exec(out)?.[1]
  const backend = await fetch(`http://127.0.0.1:${port}/v1/token`, {
    method: 'POST',
    headers: { authorization: `Bearer ${backendKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ subject: 'user-42', allowed_creators: ['streamer1'] }),
  })
  t.equal(backend.status, 200, 'the backend curl works too')
  t.equal((await fetch(`http://127.0.0.1:${port}/demo`)).status, 200, 'the demo page is served in dev')

  child.kill('SIGTERM')
  t.equal(await exited, 0, 'SIGTERM stops both cleanly')
})
