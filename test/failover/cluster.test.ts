import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { Cluster } from 'ioredis'
import { backendFor } from '../helpers/redis-backends.js'
import { CLUSTER_NODE_TIMEOUT_MS, clusterPrimaries, startRedisCluster, until } from '../helpers/redis-topologies.js'
import { replicaPair } from '../state/redis-suites.js'
import { bothBack, noServerErrors, readyzBecomes, servingTogether, timing, traffic } from './failover.js'

// A Cluster of 3 primaries with a replica each: one primary killed, the Cluster
// promotes its replica (cluster-node-timeout 2 s), the broker follows the new slot map.
const cluster = await startRedisCluster(t, 3, 1)
const backend = backendFor('a 3-primary Cluster with replicas', { kind: 'cluster', nodes: cluster.nodes, tls: false }, () => new Cluster(cluster.nodes))

t.test('a Cluster primary killed: its replica promoted, both broker replicas follow by themselves', async (t) => {
  const { a, b } = await replicaPair(t, backend)
  t.equal((await a.token('warm-0')).body.data.cached, false)
  t.equal((await b.token('warm-0')).body.data.cached, true, 'shared before')
  const survivor = cluster.servers[1]?.port as number
  const victim = cluster.servers[0]
  t.ok((await clusterPrimaries(survivor)).includes(victim?.port as number), 'the first node is a primary')

  const stop = new AbortController()
  // A failed step must not leave the traffic running until the file times out.
  t.teardown(() => stop.abort())
  const running = traffic([a, b], stop.signal)
  await sleep(200)
  const killedAt = Date.now()
  await victim?.kill()
  await Promise.all([readyzBecomes(a, 503, 5000), readyzBecomes(b, 503, 5000)])

  const promoted = await until(
    'the Cluster promotes the replica',
    async () => {
      const primaries = await clusterPrimaries(survivor)
      return primaries.length === 3 && !primaries.includes(victim?.port as number)
    },
    20_000,
  )
  const promotedAfter = Date.now() - killedAt
  const { ready, shared } = await bothBack(t, a, b, 15_000)
  const sharedAfter = Date.now() - killedAt
  const readyAfter = sharedAfter - shared
  stop.abort()
  noServerErrors(t, await running, 'traffic through the Cluster failover')

  const mintsAfter = await servingTogether(t, a, b, Array.from({ length: 6 }, (_, i) => `after-${i}`), 4)
  timing(t, 'Cluster failover (primary killed)', {
    'cluster-node-timeout': `${CLUSTER_NODE_TIMEOUT_MS} ms`,
    'promoted after': `${promotedAfter} ms (polled ${promoted} ms)`,
    'readyz 200 after': `${readyAfter} ms (waited ${Math.max(...ready)} ms after promotion)`,
    'shared state after': `${sharedAfter} ms (${shared} ms after ready)`,
    'mints per key after': mintsAfter,
  })
})
