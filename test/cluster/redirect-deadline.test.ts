import t from 'tap'
import type { Cluster } from 'ioredis'
import { COMMAND_TIMED_OUT } from '../../src/state/command-deadline.js'
import { createRedisClient } from '../../src/state/redis-client.js'
import { command, startRedisCluster, until } from '../helpers/redis-topologies.js'

const DEADLINE_MS = 300

// A Cluster re-sends a redirected command (MOVED, ASK, TRYAGAIN, a closed connection) to another node as the same
// command object: it must keep the deadline it got when first sent, however many nodes it visits.
t.test('Cluster: a command redirected (MOVED) to a node that does not answer still fails at its deadline', async (t) => {
  const cluster = await startRedisCluster(t, 3)
  const client = createRedisClient({ kind: 'cluster', nodes: cluster.nodes, tls: false }, { commandTimeoutMs: DEADLINE_MS }) as Cluster
  client.on('error', () => {})
  t.teardown(() => client.disconnect())
  await until('the cluster client is ready', async () => client.status === 'ready')
  const key = 'tkb:test:{moved-key}'
  const slot = Number(await client.cluster('KEYSLOT', key))
  await client.get(key)
  const nodes = await Promise.all(
    cluster.servers.map(async (s) => ({
      port: s.port,
      id: String(await command(s.port, 'CLUSTER', 'MYID')),
      pid: Number(/process_id:(\d+)/.exec(String(await command(s.port, 'INFO', 'server')))?.[1]),
    })),
  )
  const owner = nodes.find((n) => `127.0.0.1:${n.port}` === client.slots[slot]?.[0])
  const other = nodes.find((n) => n !== owner)
  if (owner === undefined || other === undefined) return t.fail('the slot has an owner and there is another primary')
  // Connect to the other node first (node connections are made when first used): a key in one of its slots.
  let i = 0
  while (client.slots[Number(await client.cluster('KEYSLOT', `tkb:test:{w${i}}`))]?.[0] !== `127.0.0.1:${other.port}`) i++
  await client.get(`tkb:test:{w${i}}`)
  // The (empty) slot moves to the other node, which then stops; the client still sends to the owner, which answers MOVED.
  for (const n of nodes) await command(n.port, 'CLUSTER', 'SETSLOT', slot, 'NODE', other.id)
  process.kill(other.pid, 'SIGSTOP')
  t.teardown(() => void process.kill(other.pid, 'SIGCONT'))
  const started = performance.now()
  const outcome = await Promise.race([
    client.get(key).then(
      (v) => `answered ${v}`,
      (err: Error) => err.message,
    ),
    new Promise<string>((resolve) => setTimeout(() => resolve('still waiting after 3 s'), 3000)),
  ])
  const took = performance.now() - started
  t.equal(outcome, COMMAND_TIMED_OUT, `the redirected command failed after ${Math.round(took)} ms`)
  t.ok(took < 3 * DEADLINE_MS, 'at its deadline (with at most the one extension of a late timer)')
})
