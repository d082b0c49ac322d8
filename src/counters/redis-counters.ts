import type { RedisClient } from '../state/redis-client.js'
import { defineScript, type RedisScript } from '../state/redis-script.js'
import type { Counters, WindowCount } from './counters.js'

// A fixed window, counted only while under ARGV[2]: the first take starts it (a key left without expiry, never
// expected, is given one); answers {count after, ms left, 1 if counted else 0}.
const TAKE = `
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
local ttl = redis.call('PTTL', KEYS[1])
if n >= tonumber(ARGV[2]) then return {n, math.max(ttl, 0), 0} end
n = redis.call('INCR', KEYS[1])
ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl, 1}`

const PEEK = `
local n = redis.call('GET', KEYS[1])
if not n then return {0, 0} end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then return {0, 0} end
return {tonumber(n), ttl}`

/** Options of {@link RedisCounters}. */
export interface RedisCountersOptions {
  redis: RedisClient
  /** Namespace of every key, default `tkb:`. */
  prefix?: string
}

/**
 * {@link Counters} shared by replicas through Redis. Each window is one key
 * (`{prefix}ctr:{<name>}`): every script touches a single key, so any
 * Cluster slot will do. Redis errors are
 * thrown; the state's fallback decides what they mean.
 */
export class RedisCounters implements Counters {
  readonly #redis: RedisClient
  readonly #prefix: string
  readonly #take: RedisScript<[number, number, number]>
  readonly #peek: RedisScript<[number, number]>

  constructor(options: RedisCountersOptions) {
    this.#redis = options.redis
    this.#prefix = options.prefix ?? 'tkb:'
    this.#take = defineScript(this.#redis, 1, TAKE)
    this.#peek = defineScript(this.#redis, 1, PEEK)
  }

  #window(key: string): string {
    return `${this.#prefix}ctr:{${key}}`
  }

  async take(key: string, windowMs: number, max: number): Promise<WindowCount & { taken: boolean }> {
    const [count, resetInMs, taken] = await this.#take([this.#window(key)], [Math.max(1, Math.floor(windowMs)), Math.max(0, Math.floor(max))])
    return { count, resetInMs, taken: taken === 1 }
  }

  async peek(key: string): Promise<WindowCount> {
    const [count, resetInMs] = await this.#peek([this.#window(key)], [])
    return { count, resetInMs }
  }

  /** The connection belongs to the state, which quits it. */
  async close(): Promise<void> {}
}
