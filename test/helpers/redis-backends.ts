import { randomBytes } from 'node:crypto'
import { Cluster, Redis } from 'ioredis'
import type { Test } from 'tap'
import type { RedisTarget } from '../../src/config/redis-target.js'
import type { RedisClient } from '../../src/state/redis-client.js'
import { TEST_REDIS_URL } from './redis.js'
import { startRedisCluster } from './redis-topologies.js'

/**
 * A Redis deployment the shared-state suites run against: how the broker
 * reaches it (a config target) and how a test gets a client of its own.
 */
export interface RedisBackend {
  name: string
  target: RedisTarget
  /** A client and a fresh key prefix; the prefix's keys are deleted at teardown. */
  client(t: Test): Promise<{ redis: RedisClient; prefix: string }>
  /** Every key under `prefix`, on every primary. */
  keys(redis: RedisClient, prefix: string): Promise<string[]>
}

const freshPrefix = () => `tkb:test:${randomBytes(6).toString('hex')}:`

async function scanNode(node: Redis, prefix: string): Promise<string[]> {
  const keys: string[] = []
  let cursor = '0'
  do {
    const [next, batch] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
    cursor = next
    keys.push(...batch)
  } while (cursor !== '0')
  return keys
}

async function scanAll(redis: RedisClient, prefix: string): Promise<string[]> {
  const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis]
  return (await Promise.all(nodes.map((n) => scanNode(n, prefix)))).flat()
}

async function clientFor(t: Test, make: () => RedisClient): Promise<{ redis: RedisClient; prefix: string }> {
  const redis = make()
  await new Promise<void>((resolve, reject) => {
    redis.once('ready', resolve)
    redis.once('error', reject)
  })
  const prefix = freshPrefix()
  t.teardown(async () => {
    // DEL one key at a time: on a Cluster the keys of a prefix live in many slots.
    for (const key of await scanAll(redis, prefix).catch(() => [])) await redis.del(key).catch(() => undefined)
    await redis.quit().catch(() => undefined)
  })
  return { redis, prefix }
}

/** The shared test Redis (127.0.0.1:6379, `TEST_REDIS_URL`), one prefix per test. */
export const plainBackend: RedisBackend = {
  name: 'one Redis',
  target: { kind: 'url', url: TEST_REDIS_URL, tls: false },
  client: (t) => clientFor(t, () => new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 })),
  keys: scanAll,
}

/** A 3-primary Cluster of this test's own, stopped at its teardown. */
export async function clusterBackend(t: Test): Promise<RedisBackend> {
  const cluster = await startRedisCluster(t)
  return {
    name: '3-primary Cluster',
    target: { kind: 'cluster', nodes: cluster.nodes, tls: false },
    client: (t) => clientFor(t, () => new Cluster(cluster.nodes, { redisOptions: { maxRetriesPerRequest: 1 } })),
    keys: scanAll,
  }
}

/** A backend for any target (Sentinel, a fixed address), with clients of the same kind the broker uses. */
export function backendFor(name: string, target: RedisTarget, make: () => RedisClient): RedisBackend {
  return { name, target, client: (t) => clientFor(t, make), keys: scanAll }
}
