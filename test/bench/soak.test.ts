import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const root = fileURLToPath(new URL('../../', import.meta.url))
const tsx = fileURLToPath(new URL('../../node_modules/tsx/dist/cli.mjs', import.meta.url))

t.test('npm run soak -- --seconds 20: exit 0 and totals that hold', { timeout: 110_000 }, async (t) => {
  // As `npm run soak` runs it (after the build `npm test` made), without the loaders tap puts in NODE_OPTIONS.
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.NODE_OPTIONS
  const child = spawn(process.execPath, [tsx, 'bench/soak.ts', '--seconds', '20'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d) => (out += String(d)))
  child.stderr.on('data', (d) => (out += String(d)))
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  t.equal(code, 0, `exit 0\n${out}`)
  const line = out.split('\n').find((l) => l.startsWith('SOAK_TOTALS '))
  t.ok(line, 'totals printed')
  const totals = JSON.parse((line ?? 'SOAK_TOTALS {}').slice('SOAK_TOTALS '.length))
  t.ok(totals.requests >= 1080, `a steady rate: ${totals.requests} requests in 20 s at 60/s`)
  t.equal(totals.internal500, 0, 'no 500')
  t.equal(totals.unexplained5xx, 0, 'no 5xx outside the upstream fault windows')
  t.equal(totals.wrongTokens, 0, 'every token grants exactly what its subject asked for')
  t.equal(totals.unexpectedAnswers, 0, 'every bad request got its contract 4xx')
  t.equal(totals.cachedNotServed, 0, 'every request for a key in the shared cache served')
  t.equal(totals.outagesOutsideRestart, 0, 'no replica took Redis for slow or away outside the restart')
  t.ok(totals.upstreamFaultsSeen ?? totals.upstream5xxInFaults > 0, 'the upstream faults did happen')
  t.ok(totals.upstream.mints >= totals.distinctKeys && totals.upstream.mints <= totals.allowedMints, 'upstream mints against distinct keys')
  t.equal(totals.secretsInLogs, 0)
  t.same(totals.failed, [])
  t.match(out, /RSS MiB per replica, start -> end +\d+ -> \d+, \d+ -> \d+/)
})
