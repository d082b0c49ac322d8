import type { FastifyBaseLogger } from 'fastify'
import { MemoryTokenStore } from '../cache/memory-store.js'
import type { TokenStore } from '../cache/token-store.js'
import type { Config } from '../config/index.js'
import type { Counters } from '../counters/counters.js'
import { MemoryCounters } from '../counters/memory-counters.js'
import type { ReadinessCheck } from '../routes/health.js'

/** The state a broker keeps: in this process, or shared with other replicas through Redis. */
export interface BrokerState {
  store: TokenStore
  counters: Counters
  /** A @fastify/rate-limit store class, when the broker's own limits are shared. */
  rateLimitStore?: unknown
  readiness: ReadinessCheck[]
  close(): Promise<void>
}

/** Builds the state the configuration asks for: memory without `REDIS_URL`. */
export async function createState(config: Config, _log: FastifyBaseLogger): Promise<BrokerState> {
  if (config.redisUrl !== undefined) {
    throw new Error('REDIS_URL is not supported yet')
  }
  return {
    store: new MemoryTokenStore(),
    counters: new MemoryCounters(),
    readiness: [],
    close: async () => {},
  }
}
