import type { FastifyBaseLogger } from 'fastify'
import type { OverrideStore } from '../admin/overrides.js'
import { deriveCacheKeys, hashName } from '../cache/crypto.js'
import { MemoryTokenStore } from '../cache/memory-store.js'
import { RedisTokenStore } from '../cache/redis-store.js'
import type { TokenStore } from '../cache/token-store.js'
import type { Config } from '../config/index.js'
import { redisTargetOf } from '../config/redis-target.js'
import type { Counters } from '../counters/counters.js'
import { MemoryCounters } from '../counters/memory-counters.js'
import { RedisCounters } from '../counters/redis-counters.js'
import type { ReadinessCheck } from '../routes/health.js'
import { MemoryLedger, type QuotaLedger } from '../upstream/quota-ledger.js'
import { RedisLedger } from '../upstream/redis-ledger.js'
import { FallbackCounters } from './fallback-counters.js'
import { FallbackLedger } from './fallback-ledger.js'
import { FallbackTokenStore } from './fallback-store.js'
import { RedisConnection, type RedisConnectionOptions } from './redis-connection.js'
import { overrideMacKey, RedisOverrideStore } from './redis-overrides.js'
import { sharedRateLimitStore } from './rate-limit-store.js'

/** The state a broker keeps: in this process, or shared with other replicas through Redis. */
export interface BrokerState {
  store: TokenStore
  counters: Counters
  /** The tik.tools quota ledger, shared when replicas share state. */
  ledger: QuotaLedger
  /** A @fastify/rate-limit store class, when the broker's own limits are shared. */
  rateLimitStore?: unknown
  /** Where operators' tenant patches are shared, when replicas share state. */
  overrides?: OverrideStore
  readiness: ReadinessCheck[]
  close(): Promise<void>
}

/** Test and benchmark knobs; production uses the defaults. */
export interface StateOptions {
  /** Namespace of every Redis key, default `tkb:`. */
  keyPrefix?: string
  redis?: RedisConnectionOptions
}

/**
 * Builds the state the configuration asks for: memory without Redis; with
 * one (URL, Sentinel or Cluster form), Redis-backed stores that fall back to
 * memory while Redis is away or refuses writes.
 * Never fails because Redis is down: the broker starts degraded and recovers by itself.
 */
export async function createState(config: Config, log: FastifyBaseLogger, options: StateOptions = {}): Promise<BrokerState> {
  const target = redisTargetOf(config)
  if (target === undefined) {
    return { store: new MemoryTokenStore(), counters: new MemoryCounters(), ledger: new MemoryLedger(), readiness: [], close: async () => {} }
  }
  const prefix = options.keyPrefix ?? 'tkb:'
  const connection = await RedisConnection.open(target, log, { keyPrefix: prefix, ...options.redis })
  const redis = connection.client
  const keys = deriveCacheKeys({ encryptionKey: config.cacheEncryptionKey, apiKey: config.upstream.apiKey })
  const store = new FallbackTokenStore(new RedisTokenStore({ redis, keys, prefix }), connection)
  const counters = new FallbackCounters(new RedisCounters({ redis, prefix }), connection)
  // One ledger per tik.tools key, named by a keyed hash of it: two deployments with other keys never share one.
  const ledger = new FallbackLedger(new RedisLedger({ redis, prefix, keyId: hashName(keys.nameKey, 'quota-ledger', config.upstream.apiKey) }), connection)
  let closing: Promise<void> | undefined
  return {
    store,
    counters,
    ledger,
    rateLimitStore: sharedRateLimitStore(redis, connection, `${prefix}rl:`),
    overrides: new RedisOverrideStore(redis, connection, prefix, overrideMacKey({ cacheEncryptionKey: config.cacheEncryptionKey, apiKey: config.upstream.apiKey })),
    readiness: [connection.readiness],
    // The stores first (idempotent: the app closes them too), the connection last.
    close: () => (closing ??= Promise.allSettled([store.close(), counters.close(), ledger.close()]).then(() => connection.close())),
  }
}
