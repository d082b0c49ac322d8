import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import t from 'tap'

// `npm run bench:ab` with tiny durations, so the harness cannot rot. No timing is asserted: only that it runs and prints its table.
async function ab(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('../../bench/ab.ts', import.meta.url)), ...args], {
    env: { ...process.env, BENCH_AB_ROUNDS: '1', BENCH_DURATION_S: '0.3', BENCH_CONNECTIONS: '4', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => (out += String(d)))
  child.stderr.on('data', (d) => (err += String(d)))
  const [code] = (await once(child, 'exit')) as [number | null]
  return { code, out, err }
}

const row = (out: string, label: string): string[] =>
  (out.split('\n').find((l) => l.startsWith(`${label} `)) ?? '').split(/ {2,}/).slice(1)

t.test('two servers side by side on Redis: a row each, with req/s, the ratio to the first, CPU split and Redis CPU', { timeout: 120_000 }, async (t) => {
  const { code, out, err } = await ab(['bare', 'dist'], { BENCH_AB_ROW: 'redis-apikey' })
  t.equal(code, 0, `bench:ab exits 0\n${err}`)
  t.match(out, /hit · redis · apikey, 4 connections, 1 alternating rounds of 0\.3 s/)
  const bare = row(out, 'bare')
  const dist = row(out, 'dist')
  t.match(bare[0], /^\d[\d,]*$/, 'bare: req/s')
  t.equal(bare[1], '1.00', 'the first server is the ratio of 1')
  t.match(dist[1], /^\d+\.\d\d$/, 'the broker: its ratio to the first')
  t.match(dist[3], /^\d+\.\d$/, 'the broker: CPU per request')
  t.match(dist[6], /^\d+\.\d$/, "the broker: Redis's CPU per request (Redis runs on this machine)")
  t.equal(bare[6], '–', 'bare Fastify uses no Redis')
})

t.test('a mistake in what was asked is one line and exit code 2, before any server starts', async (t) => {
  const cases: Array<[string, string[], Record<string, string>, RegExp]> = [
    ['an unknown row', ['bare'], { BENCH_AB_ROW: 'memory-rs256' }, /BENCH_AB_ROW=memory-rs256 is not a row\nusage: /],
    ['no server', [], {}, /no server named\nusage: /],
    ['an unknown revision, after a good server', ['bare', 'git:no-such-revision'], {}, /git:no-such-revision is not a commit of this repository/],
    ['a directory without a build', ['bare', 'test'], {}, /test: no broker build there/],
    ['a number that is not one', ['bare'], { BENCH_AB_ROUNDS: 'two' }, /BENCH_AB_ROUNDS=two: expected a whole number ≥ 1/],
    ['no Redis for a Redis row', ['bare'], { BENCH_AB_ROW: 'redis-hs256', BENCH_REDIS_URL: 'redis://127.0.0.1:1' }, /no Redis at redis:\/\/127\.0\.0\.1:1 .*set BENCH_REDIS_URL/],
  ]
  for (const [name, args, env, message] of cases) {
    const { code, out, err } = await ab(args, env)
    t.equal(code, 2, `${name}: exit code 2`)
    t.match(err, message, `${name}: says what is wrong`)
    t.notMatch(err, /\n\s+at /, `${name}: no stack trace`)
    t.equal(out, '', `${name}: no table`)
  }
})
