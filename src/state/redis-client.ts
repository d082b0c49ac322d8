import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis'
import type { RedisTarget } from '../config/redis-target.js'
import { boundCommands } from './command-deadline.js'

/** The shared state's client: one Redis (URL or Sentinel form) or a Cluster; the stores use only what both offer. */
export type RedisClient = Redis | Cluster

/** Timings of the shared connection; the defaults suit a Redis on the same network. */
export interface RedisClientOptions {
  /** Every command's bound: a slow Redis must not hold a request. Default 400 ms. */
  commandTimeoutMs?: number
  connectTimeoutMs?: number
  /** Longest pause between reconnect attempts, which go on forever. Default 1000 ms. */
  maxRetryDelayMs?: number
  /**
   * Called when one Redis (URL or Sentinel form, not a Cluster) answers with
   * a replica-role error ({@link reconnectOnReplicaRole}), just before ioredis
   * drops the connection for it: the evidence that it refuses writes, which
   * the command itself no longer carries (it is resent, and fails unsent).
   */
  onReplicaRole?: (err: Error) => void
}

/**
 * Errors that say "this node is (now) a replica" or "no primary right now".
 * ioredis then drops the connection and connects again, which for the
 * Sentinel form asks the Sentinels where the primary is now (2: also resend
 * the command; without an offline queue it fails at once, never twice).
 */
const REPLICA_ROLE = /^(READONLY|MASTERDOWN|NOREPLICAS)\b|can't write against a read only replica/

/** `reconnectOnError` of every connection: reconnect on a replica-role answer, else let the error through. */
export function reconnectOnReplicaRole(err: Error): 2 | false {
  return REPLICA_ROLE.test(err.message) ? 2 : false
}

/**
 * Builds ioredis's own client for the target, configured to fail fast: no
 * offline queue, every command bounded ({@link boundCommands}, on each
 * connection of a Cluster too), endless capped reconnects, and no command
 * sent twice after a lost connection (an INCR could count twice).
 */
export function createRedisClient(target: RedisTarget, options: RedisClientOptions = {}): RedisClient {
  const commandTimeout = options.commandTimeoutMs ?? 400
  const client = createClient(target, options, commandTimeout)
  if (client instanceof Cluster) client.on('+node', (node: Redis) => boundCommands(node, commandTimeout, { clusterNode: true }))
  else boundCommands(client, commandTimeout)
  return client
}

function createClient(target: RedisTarget, options: RedisClientOptions, commandTimeout: number): RedisClient {
  const maxDelay = options.maxRetryDelayMs ?? 1000
  const retry = (attempt: number): number => Math.min(50 * attempt, maxDelay)
  const connectTimeout = options.connectTimeoutMs ?? 2000
  const credentials = {
    ...(target.username !== undefined && { username: target.username }),
    ...(target.password !== undefined && { password: target.password }),
  }
  const onReplicaRole = options.onReplicaRole
  const connection: RedisOptions = {
    maxRetriesPerRequest: 1,
    // No commandTimeout here: boundCommands sets the deadline, one that a busy event loop cannot fake.
    connectTimeout,
    autoResendUnfulfilledCommands: false,
    reconnectOnError:
      onReplicaRole === undefined || target.kind === 'cluster'
        ? reconnectOnReplicaRole
        : (err) => {
            const reconnect = reconnectOnReplicaRole(err)
            if (reconnect !== false) onReplicaRole(err)
            return reconnect
          },
    connectionName: 'tiktools-broker',
    ...credentials,
    ...(target.tls && { tls: {} }),
  }
  switch (target.kind) {
    case 'url':
      // The URL's own credentials win; REDIS_USERNAME / REDIS_PASSWORD only fill in what it lacks.
      return new Redis(target.url, { ...connection, enableOfflineQueue: false, retryStrategy: retry, lazyConnect: false })
    case 'sentinel':
      return new Redis({
        ...connection,
        enableOfflineQueue: false,
        retryStrategy: retry,
        sentinels: target.sentinels,
        name: target.name,
        role: 'master',
        // The same credentials for the Sentinels, as the contract says; a Sentinel without a password only warns.
        ...(target.username !== undefined && { sentinelUsername: target.username }),
        ...(target.password !== undefined && { sentinelPassword: target.password }),
        ...(target.tls && { sentinelTLS: {}, enableTLSForSentinelMode: true }),
        sentinelCommandTimeout: commandTimeout,
        sentinelRetryStrategy: retry,
        // Reconnect at +switch-master rather than at the first refused write.
        failoverDetector: true,
      })
    case 'cluster': {
      const cluster: ClusterOptions = {
        enableOfflineQueue: false,
        clusterRetryStrategy: retry,
        // A command follows MOVED/ASK and waits out a failover a few times, not 16: the caller has a fallback.
        maxRedirections: 5,
        retryDelayOnFailover: 100,
        retryDelayOnClusterDown: 100,
        retryDelayOnTryAgain: 100,
        slotsRefreshTimeout: Math.max(1000, commandTimeout),
        redisOptions: connection,
        // TLS to nodes known by name (managed services): keep the name for the certificate check.
        ...(target.tls && { dnsLookup: (address: string, done: (err: Error | null, address: string) => void) => done(null, address) }),
      }
      return new Cluster(target.nodes, cluster)
    }
  }
}

// CRC16/XMODEM, as Redis Cluster hashes keys to its 16384 slots.
function crc16(text: string): number {
  let crc = 0
  for (const byte of Buffer.from(text)) {
    crc ^= byte << 8
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  }
  return crc
}

/** The Cluster slot of a key whose hash tag is `tag`. */
export function slotOfTag(tag: string): number {
  return crc16(tag) % 16_384
}

/**
 * One hash tag per primary of a Cluster, `base` plus a suffix chosen so that
 * a key with the tag lands in that primary's slots: a write to each proves
 * every primary takes writes. Empty while the slot map is unknown.
 */
export function tagsOnEveryPrimary(cluster: Cluster, base: string): string[] {
  const owners = new Set<string>()
  for (const nodes of cluster.slots) if (nodes?.[0] !== undefined) owners.add(nodes[0])
  const tags: string[] = []
  for (let i = 0; owners.size > 0 && i < 10_000; i++) {
    const tag = `${base}-${i}`
    const owner = cluster.slots[slotOfTag(tag)]?.[0]
    if (owner !== undefined && owners.delete(owner)) tags.push(tag)
  }
  return tags
}
