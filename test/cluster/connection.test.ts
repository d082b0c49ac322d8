import { Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { createLogger } from '../../src/logger.js'
import { RECONNECT_GRACE_MS, RedisConnection } from '../../src/state/redis-connection.js'
import { startRedisCluster, until } from '../helpers/redis-topologies.js'

// A Cluster's availability: its client closes only when no node is left (a lost node is the slot map's business),
// so that close is an outage at once, with no grace for a reconnect as one Redis's dropped connection gets.
t.test('every Cluster node gone: the outage logged once, well within the grace one Redis gets', async (t) => {
  const cluster = await startRedisCluster(t, 3, 0)
  const logs: string[] = []
  const log = createLogger('info', new Writable({ write: (chunk, _enc, cb) => (logs.push(String(chunk)), cb()) }))
  const connection = await RedisConnection.open({ kind: 'cluster', nodes: cluster.nodes, tls: false }, log, { commandTimeoutMs: 200, connectTimeoutMs: 5000 })
  t.teardown(() => connection.close())
  t.equal(connection.available, true)
  t.equal(await connection.readiness(), undefined)
  const outages = () => logs.filter((l) => /redis (unavailable|is not|available again)/.test(l))

  const stopped = Date.now()
  await Promise.all(cluster.servers.map((s) => s.kill()))
  await until('the outage logged', async () => outages().length > 0, 3000, 5)
  const after = Date.now() - stopped
  t.ok(after < RECONNECT_GRACE_MS / 2, `logged ${after} ms after the nodes stopped`)
  t.equal(connection.available, false)
  t.match(await connection.readiness(), /^redis: unavailable, not connected \[cluster /)
  await sleep(1500)
  t.equal(outages().length, 1, 'logged once, however often the Cluster retries')
})
