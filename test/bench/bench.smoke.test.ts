import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import t from 'tap'

// `npm run bench` with tiny durations, so the harness cannot rot. No timing is asserted: only that it runs and prints every row.
const ROWS = [
  'bare Fastify (constant ~400 B JSON)',
  'hit · memory · HS256 user JWT',
  'hit · memory · ES256 user JWT (JWKS)',
  'hit · memory · broker API key',
  'hit · redis · HS256 user JWT',
  'hit · redis · ES256 user JWT (JWKS)',
  'hit · redis · broker API key',
  'naive proxy (upstream every time)',
  'burst · memory',
  'burst · redis',
  'upstream (simulator) alone',
  'miss · memory · broker API key',
  'live heap per cached token',
  'RSS per cached token',
]

t.test('the bench runs end to end and prints its table with every row', { timeout: 240_000 }, async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('../../bench/run.ts', import.meta.url))], {
    env: {
      ...process.env,
      BENCH_REPEATS: '1',
      BENCH_DURATION_S: '0.3',
      BENCH_WARMUP_S: '0',
      BENCH_CONNECTIONS: '4',
      BENCH_SEQUENTIAL: '20',
      BENCH_BURST: '100',
      BENCH_BURST_KEYS: '10',
      BENCH_MISSES: '10',
      BENCH_MISS_WARMUP: '5',
      BENCH_MEMORY_TOKENS: '2000',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => (out += String(d)))
  child.stderr.on('data', (d) => (err += String(d)))
  const [code] = await once(child, 'exit')
  t.equal(code, 0, `the bench exits 0\n${err}`)
  for (const row of ROWS) {
    const line = out.split('\n').find((l) => l.startsWith(row))
    t.ok(line !== undefined && !line.includes('not run'), `row "${row}" is measured`)
  }
  t.match(out, /mints 10 \(expected 10\)/, 'a burst mints once per key')
  t.match(out, /p50 adds -?\d+ µs to bare/, 'the one-connection row says what a hit adds')
  for (const row of ROWS.slice(0, 7)) {
    const line = out.split('\n').find((l) => l.startsWith(row)) ?? ''
    t.match(line, /CPU µs\/req: user \d+ \+ kernel -?\d+/, `row "${row}" splits its server CPU into user mode and kernel`)
  }
  const inside = out.match(/inside: -?\d+\.\d+ ms of its own beyond its upstream call \(\d+\.\d+ ms\)/g) ?? []
  t.equal(inside.length, 2, 'the proxy and the broker each timed a miss inside (server time less the upstream call)')
  t.match(out, /CPU \d+\.\d+ × the proxy's/, "a miss's server CPU beside the proxy's")
})
