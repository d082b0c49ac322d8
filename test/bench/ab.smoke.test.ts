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

t.test('an unknown row or no server is refused with the usage, not run', async (t) => {
  const unknown = await ab(['bare'], { BENCH_AB_ROW: 'memory-rs256' })
  t.equal(unknown.code, 2)
  t.match(unknown.err, /usage: npm run bench:ab/)
  const none = await ab([], {})
  t.equal(none.code, 2)
  const rev = await ab(['git:no-such-revision'], {})
  t.equal(rev.code, 2)
  t.match(rev.err, /git:no-such-revision is not a commit of this repository/)
})
