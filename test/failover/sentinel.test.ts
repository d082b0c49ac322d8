import { spawn } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { Redis } from 'ioredis'
import { startSimulator } from '../../src/simulator/index.js'
import { freePort } from '../helpers/redis.js'
import { backendFor } from '../helpers/redis-backends.js'
import { SENTINEL_TIMINGS, startSentinels, until } from '../helpers/redis-topologies.js'
import { API_KEY, requireDist, requestToken, userJwt, writeTenantsFile } from '../scale/processes.js'
import { admin, coldBurst, patchSeen, replicaPair, sharedStateSuite } from '../state/redis-suites.js'
import { bothBack, noServerErrors, OUTAGE, readyzBecomes, SERVER_CHANGED, servingTogether, timing, traffic } from './failover.js'

// A primary, a replica and three Sentinels (redis-server CONF --sentinel), the
// broker given only the Sentinels (REDIS_SENTINELS + REDIS_SENTINEL_MASTER).
const dist = requireDist()
const topology = await startSentinels(t)
const backend = backendFor(
  'a Sentinel-managed primary',
  { kind: 'sentinel', sentinels: topology.sentinelNodes, name: topology.name, tls: false },
  () => new Redis({ sentinels: topology.sentinelNodes, name: topology.name, maxRetriesPerRequest: 1 }),
)

sharedStateSuite(t, backend)

t.test('the brokers\' connections dropped on the primary (as a +switch-master after the client found the new primary does): back through the Sentinels, no outage logged', async (t) => {
  const { a, b } = await replicaPair(t, backend)
  t.equal((await a.token('drop-0')).body.data.cached, false)
  const primary = topology.primary.connect()
  t.teardown(() => primary.disconnect())
  const ids = String(await primary.call('CLIENT', 'LIST'))
    .split('\n')
    .filter((l) => / name=tiktools-broker /.test(l))
    .map((l) => /\bid=(\d+)/.exec(l)?.[1] as string)
  t.ok(ids.length >= 2, `the brokers' connections (${ids.length})`)
  const dropped = Date.now()
  for (const id of ids) await primary.call('CLIENT', 'KILL', 'ID', id)
  const { shared } = await bothBack(t, a, b, 5000)
  t.pass(`ready and sharing again ${Date.now() - dropped} ms after the drop (${shared} ms to share)`)
  t.equal((await b.token('drop-0')).body.data.cached, true, 'the token minted before the drop is still shared')
  for (const [name, r] of [['a', a], ['b', b]] as const) t.same(r.logs.filter((l) => OUTAGE.test(l) || l.includes('available again') || l.includes(SERVER_CHANGED)), [], `${name}: nothing logged`)
})

t.test('the primary killed: Sentinel promotes the replica, both broker replicas follow by themselves', async (t) => {
  const { a, b } = await replicaPair(t, backend)
  t.equal((await a.token('warm-0')).body.data.cached, false)
  t.equal((await b.token('warm-0')).body.data.cached, true, 'shared before')
  const oldPort = await topology.primaryPort()
  t.equal(oldPort, topology.primary.port)

  const stop = new AbortController()
  // A failed step must not leave the traffic running until the file times out.
  t.teardown(() => stop.abort())
  const running = traffic([a, b], stop.signal)
  await sleep(200)
  const killedAt = Date.now()
  await topology.primary.kill()
  await Promise.all([readyzBecomes(a, 503, 3000), readyzBecomes(b, 503, 3000)])

  // During the failover: hits served, misses minted at worst once per replica, a purge the contract's 503.
  const during = await coldBurst([a, b], ['during-1', 'during-2', 'during-3'], 6)
  t.same(during.statuses, [200], 'a cold burst during the failover is served')
  t.ok(during.mintsPerKey <= 2, `at most one mint per key per replica (${during.mintsPerKey})`)
  const purge = await admin(a, 'DELETE', '/admin/tenants/acme/subjects/during-1/tokens')
  t.match({ status: purge.statusCode, body: purge.json() }, { status: 503, body: { code: 'UPSTREAM_UNAVAILABLE' } })

  const promoted = await until('Sentinel names a new primary', async () => (await topology.primaryPort()) === topology.replica.port, 20_000, 50)
  const promotedAfter = Date.now() - killedAt
  const { ready, shared } = await bothBack(t, a, b, 15_000)
  const sharedAfter = Date.now() - killedAt
  const readyAfter = sharedAfter - shared
  stop.abort()
  noServerErrors(t, await running, 'traffic through the failover')

  // The promoted replica is another server process: each broker replica says so once, after its recovery.
  const mintsAfter = await servingTogether(t, a, b, ['after-1', 'after-2', 'after-3'], 6, 1)
  t.ok((await patchSeen(b, a, 9)) < 5000, 'a PATCH through one replica is in force on the other')
  let carol = 0
  for (let i = 0; i < 12; i++) if ((await (i % 2 === 0 ? a : b).token('limited-after', { allowed_creators: ['a1'] })).status === 200) carol++
  t.equal(carol, 9, 'the patched limit of 9 holds across the replicas')

  t.ok(readyAfter < 15_000, 'both followed within seconds')
  timing(t, 'Sentinel failover (primary killed)', {
    'Sentinel settings': `down-after ${SENTINEL_TIMINGS.downAfterMs} ms, failover-timeout ${SENTINEL_TIMINGS.failoverTimeoutMs} ms`,
    'promoted after': `${promotedAfter} ms (polled ${promoted} ms)`,
    'readyz 200 after': `${readyAfter} ms (both; waited ${Math.max(...ready)} ms after promotion)`,
    'shared state after': `${sharedAfter} ms (${shared} ms after ready)`,
    'mints per key during': during.mintsPerKey,
    after: mintsAfter,
  })
})

t.test('`node dist/main.js` with REDIS_SENTINELS: ready on the current primary, the form in the log, no password anywhere', async (t) => {
  const sim = await startSimulator({ apiKeys: [API_KEY] })
  t.teardown(() => sim.close())
  const tenants = await writeTenantsFile()
  t.teardown(() => tenants.remove())
  const port = await freePort()
  const sentinels = topology.sentinelNodes.map((n) => `${n.host}:${n.port}`).join(',')
  const child = spawn(process.execPath, [dist], {
    env: {
      PATH: process.env.PATH,
      TIKTOOLS_API_KEY: API_KEY,
      UPSTREAM_URL: sim.url,
      TENANTS_FILE: tenants.file,
      USER_JWT_SECRET: 'scale-test-user-jwt-secret-0123456789',
      HOST: '127.0.0.1',
      PORT: String(port),
      REDIS_SENTINELS: sentinels,
      REDIS_SENTINEL_MASTER: topology.name,
      // Neither the Sentinels nor the nodes ask for one: ioredis only warns, and the password must show nowhere.
      REDIS_PASSWORD: 'sentinel-pw-never-logged',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (d) => (output += d))
  child.stderr.on('data', (d) => (output += d))
  t.teardown(() => void child.kill('SIGKILL'))
  const url = `http://127.0.0.1:${port}`
  // A cold start of the compiled server takes seconds on a loaded machine (7-10 s at a load average of 12 on 2 cores).
  await until('the broker is ready', async () => (await fetch(`${url}/readyz`)).status === 200, 30_000).catch((err: Error) => {
    throw new Error(`${err.message}; its output:\n${output}`)
  })
  const answer = await requestToken(url, await userJwt('bulk', 'process-viewer'))
  t.equal(answer.status, 200)
  const started = output.split('\n').find((l) => l.includes('tiktools-broker ready'))
  t.match(JSON.parse(started ?? '{}'), { store: 'redis', redis: `sentinel ${topology.name} via ${sentinels}` }, 'the start-up log names the form')
  t.notMatch(output, /sentinel-pw-never-logged/, 'no password in the output')
  const bad = spawn(process.execPath, [dist], {
    env: { PATH: process.env.PATH, TIKTOOLS_API_KEY: API_KEY, AUTH_JWT_SECRET: 'x'.repeat(32), REDIS_SENTINELS: 'sentinel-1', REDIS_SENTINEL_MASTER: 'm' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let err = ''
  bad.stderr.on('data', (d) => (err += d))
  const code = await new Promise((resolve) => bad.on('exit', resolve))
  t.equal(code, 1, 'a bad address stops the start')
  t.match(err, /REDIS_SENTINELS: "sentinel-1" is not host:port/)
})
