import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { Redis } from 'ioredis'
import { backendFor } from '../helpers/redis-backends.js'
import { command, spawnRedis } from '../helpers/redis-topologies.js'
import { admin, coldBurst, replicaPair, sharedStateSuite } from '../state/redis-suites.js'
import { bothBack, noServerErrors, OUTAGE, readyzBecomes, servingTogether, timing, traffic } from './failover.js'

// A managed Redis that fails over behind one address: the broker's Redis is
// demoted to a replica of another server (REPLICAOF), so writes answer
// READONLY, then promoted back (REPLICAOF NO ONE). Nothing restarts.
const primary = await spawnRedis(t)
const other = await spawnRedis(t)
const url = `redis://127.0.0.1:${primary.port}`
const backend = backendFor('one Redis at a fixed address', { kind: 'url', url, tls: false }, () => new Redis(url, { maxRetriesPerRequest: 1 }))

sharedStateSuite(t, backend)

t.test('demoted to a replica (READONLY): an outage without 5xx, then shared state again by itself', async (t) => {
  const { a, b } = await replicaPair(t, backend)
  t.equal((await a.token('warm-0')).body.data.cached, false)
  t.equal((await b.token('warm-0')).body.data.cached, true, 'shared before')

  const stop = new AbortController()
  // A failed step must not leave the traffic running until the file times out.
  t.teardown(() => stop.abort())
  const running = traffic([a, b], stop.signal)
  await sleep(200)
  const demotedAt = Date.now()
  await command(primary.port, 'REPLICAOF', '127.0.0.1', other.port)
  const noticed = await Promise.all([readyzBecomes(a, 503, 5000), readyzBecomes(b, 503, 5000)])
  const reason = (await a.app.inject('/readyz')).json()
  t.match(reason, { status: 'unavailable', reasons: [/^redis: unavailable.*\[url 127\.0\.0\.1:\d+\]/] }, 'the reason names the Redis, no password')
  for (const r of [a, b]) t.match(r.logs.find((l) => OUTAGE.test(l)), /"reason":"READONLY[^"]*","msg":"redis unavailable: it refuses writes/, 'the outage is logged as refused writes, with the READONLY answer')

  // During the outage: misses are minted, at worst once per replica; hits are served; a purge is the contract's 503.
  const during = await coldBurst([a, b], ['during-1', 'during-2', 'during-3'], 6)
  t.same(during.statuses, [200], 'a cold burst during the outage is served')
  t.ok(during.mintsPerKey <= 2, `at most one mint per key per replica (${during.mintsPerKey})`)
  const purge = await admin(a, 'DELETE', '/admin/tenants/acme/subjects/during-1/tokens')
  t.equal(purge.statusCode, 503)
  t.match(purge.json(), { status_code: 503, code: 'UPSTREAM_UNAVAILABLE' })
  t.ok(purge.headers['retry-after'])

  await sleep(500)
  const promotedAt = Date.now()
  await command(primary.port, 'REPLICAOF', 'NO', 'ONE')
  const { ready, shared } = await bothBack(t, a, b, 5000)
  stop.abort()
  const answers = await running
  noServerErrors(t, answers, 'traffic through the demotion')
  const duringOutage = answers.filter((r) => r.at > demotedAt && r.at < promotedAt)
  // When this fails, the message says how long the outage was and how slow its slowest answer (a stall, or a loaded machine).
  const slowestMs = Math.round(Math.max(0, ...duringOutage.map((r) => r.ms)))
  t.ok(duringOutage.length > 20, `traffic went on during the outage: ${duringOutage.length} answers in ${promotedAt - demotedAt} ms, the slowest ${slowestMs} ms`)

  const mintsAfter = await servingTogether(t, a, b, ['after-1', 'after-2', 'after-3'], 6)
  timing(t, 'demotion under a fixed address', {
    'readyz 503 after': `${Math.max(...noticed)} ms`,
    'readyz 200 after REPLICAOF NO ONE': `${Math.max(...ready)} ms`,
    'shared state after': `${Math.max(...ready) + shared} ms`,
    'mints per key during': during.mintsPerKey,
    'after': mintsAfter,
  })
})
