import { createRequire } from 'node:module'
import type { RedisHealth } from './health.js'
import type { RedisClient } from './redis-client.js'

/** What a @fastify/rate-limit store answers for a key. */
interface RateLimitCount {
  current: number
  ttl: number
}
type Callback = (err: Error | null, result?: RateLimitCount) => void
type StoreMethod = (key: string, cb: Callback, timeWindow: number, max: number) => void

/** The store interface @fastify/rate-limit drives (see its `store/*.js`). */
export interface RateLimitStore {
  incr: StoreMethod
  read: StoreMethod
  child(routeOptions: RateLimitParams): RateLimitStore
}

/** The parts of the plugin's normalised params a store uses. */
interface RateLimitParams {
  continueExceeding?: boolean
  exponentialBackoff?: boolean
  routeInfo?: { method?: string; url?: string }
}

// The plugin's own stores, so the Lua and window semantics are exactly theirs.
const require = createRequire(import.meta.url)
const LocalStore = require('@fastify/rate-limit/store/LocalStore') as new (
  continueExceeding: boolean | undefined,
  exponentialBackoff: boolean | undefined,
  cache: number,
) => RateLimitStore
const RedisStore = require('@fastify/rate-limit/store/RedisStore') as new (
  continueExceeding: boolean | undefined,
  exponentialBackoff: boolean | undefined,
  redis: RedisClient,
  key: string,
) => RateLimitStore

/** Keys the local fallback remembers per limiter; the plugin's default 5000 is small for a subject limit. */
const LOCAL_ENTRIES = 100_000

/**
 * A @fastify/rate-limit `store` class counting in Redis (keys `tkb:rl:…`; the
 * limits plugin puts the tenant in a hash tag) and, while Redis errors or is
 * away, in this process: limits are then enforced per replica, never skipped.
 *
 * @example
 * await app.register(rateLimit, { store: sharedRateLimitStore(connection.client, connection) })
 */
export function sharedRateLimitStore(redis: RedisClient, health: RedisHealth, prefix = 'tkb:rl:'): new (params: RateLimitParams) => RateLimitStore {
  class SharedRateLimitStore implements RateLimitStore {
    readonly #shared: RateLimitStore
    readonly #local: RateLimitStore

    constructor(params: RateLimitParams, namespace = prefix) {
      this.#shared = new RedisStore(params.continueExceeding, params.exponentialBackoff, redis, namespace)
      this.#local = new LocalStore(params.continueExceeding, params.exponentialBackoff, LOCAL_ENTRIES)
    }

    incr(key: string, cb: Callback, timeWindow: number, max: number): void {
      this.#run('incr', key, cb, timeWindow, max)
    }

    read(key: string, cb: Callback, timeWindow: number, max: number): void {
      this.#run('read', key, cb, timeWindow, max)
    }

    /** A limiter of its own; a route's limiter gets the route in its keys (a bare `createRateLimit` has none). */
    child(routeOptions: RateLimitParams): RateLimitStore {
      const { method, url } = routeOptions.routeInfo ?? {}
      return new SharedRateLimitStore(routeOptions, method !== undefined && url !== undefined ? `${prefix}${method}${url}:` : prefix)
    }

    #run(method: 'incr' | 'read', key: string, cb: Callback, timeWindow: number, max: number): void {
      if (!health.available) return this.#local[method](key, cb, timeWindow, max)
      this.#shared[method](
        key,
        (err, result) => {
          if (!err) return cb(null, result)
          health.noteFailure(err)
          this.#local[method](key, cb, timeWindow, max)
        },
        timeWindow,
        max,
      )
    }
  }
  return SharedRateLimitStore
}
