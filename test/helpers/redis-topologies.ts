import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Cluster, Redis } from 'ioredis'
import type { Test } from 'tap'
import type { RedisNode } from '../../src/config/redis-target.js'
import { freePort } from './redis.js'

/** One `redis-server` child (a data node or a Sentinel) on a fixed port, started by a test and stopped by it. */
export interface RedisProcess {
  port: number
  /** SIGKILL, and wait for the exit; harmless when already dead. */
  kill(): Promise<void>
  /** A short-lived client on it (for checks and admin commands); disconnect it. */
  connect(): Redis
}

/** Polls `check` until it answers true; fails after `ms` with `what`. Polling with a deadline, for states other processes reach. */
export async function until(what: string, check: () => Promise<boolean>, ms = 10_000, every = 50): Promise<number> {
  const started = Date.now()
  for (;;) {
    if (await check().catch(() => false)) return Date.now() - started
    if (Date.now() - started > ms) throw new Error(`${what}: not within ${ms} ms`)
    await sleep(every)
  }
}

function quietClient(port: number): Redis {
  const redis = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false })
  redis.on('error', () => {})
  return redis
}

/** Runs one command on a fresh connection; rejects when the server does not answer. */
export async function command(port: number, ...args: Array<string | number>): Promise<unknown> {
  const redis = quietClient(port)
  try {
    await redis.connect()
    return await redis.call(String(args[0]), ...args.slice(1).map(String))
  } finally {
    redis.disconnect()
  }
}

/** Starts `redis-server` with `args` (plus port, bind, no persistence) in its own temp dir; resolves once it answers PING. */
export async function spawnRedis(t: Test, args: string[] = [], opts: { sentinelConfig?: string } = {}): Promise<RedisProcess> {
  const port = await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'tkb-redis-'))
  let argv: string[]
  if (opts.sentinelConfig !== undefined) {
    // A Sentinel rewrites its config file: it must be its own, writable.
    const file = join(dir, 'sentinel.conf')
    await writeFile(file, `port ${port}\nbind 127.0.0.1\ndir ${dir}\n${opts.sentinelConfig}\n`)
    argv = [file, '--sentinel']
  } else {
    argv = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...args]
  }
  let child: ChildProcess | undefined = spawn('redis-server', argv, { stdio: 'ignore' })
  const proc: RedisProcess = {
    port,
    async kill() {
      const c = child
      child = undefined
      if (c === undefined || c.exitCode !== null || c.signalCode !== null) return
      const exited = once(c, 'exit')
      c.kill('SIGKILL')
      await exited
    },
    connect: () => new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, retryStrategy: () => null }),
  }
  t.teardown(async () => {
    await proc.kill()
    await rm(dir, { recursive: true, force: true })
  })
  await until(`redis-server on ${port} answers`, async () => (await command(port, 'PING')) === 'PONG', 5000, 25)
  return proc
}

/** A Redis Cluster of `masters` primaries (no replicas) on free ports, slots spread by `redis-cli --cluster create`. */
export interface RedisClusterProcesses {
  nodes: RedisNode[]
  servers: RedisProcess[]
  /** A client of the test's own (not the broker's), for direct checks. */
  client(): Cluster
}

/** Primaries after `ms` without an answer are failed over to their replica: 2 s here, so that a failover fits in a test. */
export const CLUSTER_NODE_TIMEOUT_MS = 2000

/** The ports of the primaries as `node` sees them (CLUSTER NODES), failed ones left out. */
export async function clusterPrimaries(port: number): Promise<number[]> {
  const lines = String(await command(port, 'CLUSTER', 'NODES')).trim().split('\n')
  return lines
    .map((l) => l.split(' '))
    .filter((f) => (f[2] ?? '').split(',').includes('master') && !(f[2] ?? '').includes('fail') && f[8] !== undefined)
    .map((f) => Number(/:(\d+)@/.exec(f[1] ?? '')?.[1]))
}

export async function startRedisCluster(t: Test, masters = 3, replicasEach = 0): Promise<RedisClusterProcesses> {
  const args = ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', String(CLUSTER_NODE_TIMEOUT_MS)]
  const servers = await Promise.all(Array.from({ length: masters * (1 + replicasEach) }, () => spawnRedis(t, args)))
  const addresses = servers.map((s) => `127.0.0.1:${s.port}`)
  const created = spawnSync('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', String(replicasEach), '--cluster-yes'], {
    encoding: 'utf8',
    timeout: 20_000,
  })
  if (created.status !== 0) throw new Error(`redis-cli --cluster create failed:\n${created.stdout}\n${created.stderr}`)
  for (const s of servers) {
    await until(`cluster node ${s.port} ok`, async () => String(await command(s.port, 'CLUSTER', 'INFO')).includes('cluster_state:ok'), 15_000)
  }
  if (replicasEach > 0) {
    // Every replica attached and in sync, or a failover has nobody to promote.
    await until(
      'every replica in sync',
      async () => {
        const infos = await Promise.all(servers.map((s) => command(s.port, 'INFO', 'replication').then(String)))
        return infos.filter((i) => i.includes('role:slave') && i.includes('master_link_status:up')).length === masters * replicasEach
      },
      15_000,
    )
  }
  const nodes = servers.map((s) => ({ host: '127.0.0.1', port: s.port }))
  return {
    nodes,
    servers,
    client() {
      const cluster = new Cluster(nodes, { redisOptions: { maxRetriesPerRequest: 1 } })
      t.teardown(() => cluster.disconnect())
      return cluster
    },
  }
}

/** A primary, its replica and three Sentinels watching them as `mymaster`. */
export interface SentinelProcesses {
  name: string
  primary: RedisProcess
  replica: RedisProcess
  sentinels: RedisProcess[]
  /** The addresses the broker is given (`REDIS_SENTINELS`). */
  sentinelNodes: RedisNode[]
  /** The port Sentinels currently name as the primary. */
  primaryPort(): Promise<number>
}

/** Failure detection tuned low so a failover fits in a test: down after 1 s, retried after 2 s. */
export const SENTINEL_TIMINGS = { downAfterMs: 1000, failoverTimeoutMs: 2000 }

export async function startSentinels(t: Test, name = 'mymaster'): Promise<SentinelProcesses> {
  const primary = await spawnRedis(t)
  const replica = await spawnRedis(t, ['--replicaof', '127.0.0.1', String(primary.port)])
  await until('the replica is in sync', async () => String(await command(replica.port, 'INFO', 'replication')).includes('master_link_status:up'))
  const config = [
    `sentinel monitor ${name} 127.0.0.1 ${primary.port} 2`,
    `sentinel down-after-milliseconds ${name} ${SENTINEL_TIMINGS.downAfterMs}`,
    `sentinel failover-timeout ${name} ${SENTINEL_TIMINGS.failoverTimeoutMs}`,
    `sentinel parallel-syncs ${name} 1`,
  ].join('\n')
  const sentinels = await Promise.all([0, 1, 2].map(() => spawnRedis(t, [], { sentinelConfig: config })))
  // A failover needs a majority of Sentinels that know each other and the replica.
  for (const s of sentinels) {
    await until(
      `sentinel ${s.port} knows the others and the replica`,
      async () => {
        const info = (await command(s.port, 'SENTINEL', 'MASTER', name)) as string[]
        const field = (k: string) => Number(info[info.indexOf(k) + 1])
        return field('num-other-sentinels') === 2 && field('num-slaves') === 1
      },
      15_000,
      100,
    )
  }
  return {
    name,
    primary,
    replica,
    sentinels,
    sentinelNodes: sentinels.map((s) => ({ host: '127.0.0.1', port: s.port })),
    async primaryPort() {
      for (const s of sentinels) {
        const addr = (await command(s.port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name).catch(() => null)) as string[] | null
        if (addr !== null) return Number(addr[1])
      }
      throw new Error('no Sentinel answers')
    },
  }
}
