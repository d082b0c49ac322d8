/**
 * Several replicas, with and without a shared Redis: upstream mints and
 * broker latency for bursts of 300 concurrent token requests over 10 subjects.
 *
 *   npm run build && npx tsx bench/replicas.ts
 *
 * Needs `redis-server` on the PATH (a throwaway one is started on a free port).
 */
import { cpus, loadavg } from 'node:os'
import { startSimulator } from '../src/simulator/index.js'
import { spawnRedisServer } from '../test/helpers/redis.js'
import { API_KEY, percentile, requestToken, startBrokers, userJwt, writeTenantsFile } from '../test/scale/processes.js'

interface Scenario {
  name: string
  replicas: number
  redis: boolean
}

const SCENARIOS: Scenario[] = [
  { name: '3 replicas + Redis', replicas: 3, redis: true },
  { name: '3 replicas, no Redis', replicas: 3, redis: false },
  { name: '1 replica, no Redis', replicas: 1, redis: false },
]
const REQUESTS = 300
const SUBJECTS = 10

interface Row {
  scenario: string
  burst: string
  mints: number
  ok: number
  p50: number
  p99: number
  max: number
}

/** One burst: REQUESTS concurrent requests (or `sequential` ones, one at a time), round-robin over replicas and subjects. */
async function burst(urls: string[], jwts: string[], sim: { stats: { mints: number } }, scenario: string, label: string, sequential = 0): Promise<Row> {
  const before = sim.stats.mints
  const send = (i: number) => requestToken(urls[i % urls.length] as string, jwts[i % jwts.length] as string)
  const answers = []
  if (sequential > 0) for (let i = 0; i < sequential; i++) answers.push(await send(i))
  else answers.push(...(await Promise.all(Array.from({ length: REQUESTS }, (_, i) => send(i)))))
  const ms = answers.map((a) => a.ms)
  return {
    scenario,
    burst: label,
    mints: sim.stats.mints - before,
    ok: answers.filter((a) => a.status === 200).length,
    p50: percentile(ms, 50),
    p99: percentile(ms, 99),
    max: Math.max(...ms),
  }
}

async function run(scenario: Scenario): Promise<Row[]> {
  const sim = await startSimulator({ apiKeys: [API_KEY], perMinute: 10_000 })
  const redis = scenario.redis ? await spawnRedisServer() : undefined
  const tenants = await writeTenantsFile()
  const brokers = await startBrokers({
    count: scenario.replicas,
    upstreamUrl: sim.url,
    tenantsFile: tenants.file,
    ...(redis !== undefined && { redisUrl: redis.url }),
  })
  try {
    const subjects = (round: string) => Promise.all(Array.from({ length: SUBJECTS }, (_, i) => userJwt('bulk', `${round}-${i}`)))
    const first = await subjects('cold')
    const second = await subjects('warm')
    return [
      await burst(brokers.urls, first, sim, scenario.name, 'cold start, all misses'),
      await burst(brokers.urls, second, sim, scenario.name, 'warm, all misses'),
      await burst(brokers.urls, second, sim, scenario.name, 'warm, all cached'),
      await burst(brokers.urls, second, sim, scenario.name, 'cached, 1 at a time (100)', 100),
    ]
  } finally {
    await brokers.close()
    await redis?.kill()
    await sim.close()
    await tenants.remove()
  }
}

const rows: Row[] = []
for (const scenario of SCENARIOS) rows.push(...(await run(scenario)))

const f = (n: number) => n.toFixed(1).padStart(7)
console.log(`\n${REQUESTS} concurrent POST /v1/token, ${SUBJECTS} subjects, round-robin over the replicas (latency in ms, client side)`)
console.log(`${cpus().length} CPUs, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}: client, simulator, Redis and replicas share them\n`)
console.log(`${'scenario'.padEnd(22)} ${'burst'.padEnd(26)} mints  200s     p50     p99     max`)
for (const r of rows) {
  console.log(`${r.scenario.padEnd(22)} ${r.burst.padEnd(26)} ${String(r.mints).padStart(5)} ${String(r.ok).padStart(5)} ${f(r.p50)} ${f(r.p99)} ${f(r.max)}`)
}
