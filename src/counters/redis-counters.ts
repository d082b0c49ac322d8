import type { RedisClient } from '../state/redis-client.js'
import { defineScript, type RedisScript } from '../state/redis-script.js'
import type { Counters, QuotaState, WindowCount } from './counters.js'

// A fixed window: the first hit starts it; a key left without expiry (never expected) is given one.
const INCREMENT = `
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}`

const PEEK = `
local n = redis.call('GET', KEYS[1])
if not n then return {0, 0} end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then return {0, 0} end
return {tonumber(n), ttl}`

// mergeQuota in Lua: a new observation replaces the known one, but within the
// same upstream window (same reset) blockedUntil never moves back. Values are
// kept as the strings JS wrote, so no epoch-ms number loses precision in Lua.
const MERGE_QUOTA = `
local blocked = ARGV[4]
local knownReset = redis.call('HGET', KEYS[1], 'reset')
if knownReset and knownReset ~= '' and ARGV[3] ~= '' and knownReset == ARGV[3] then
  local knownBlocked = redis.call('HGET', KEYS[1], 'blockedUntil')
  if knownBlocked and tonumber(knownBlocked) > tonumber(blocked) then blocked = knownBlocked end
end
redis.call('HSET', KEYS[1], 'limit', ARGV[1], 'remaining', ARGV[2], 'reset', ARGV[3], 'blockedUntil', blocked)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return blocked`

/** A day beyond the last block: long enough to outlive any upstream window, short enough not to linger. */
const QUOTA_TTL_MS = 24 * 3600 * 1000

/** Options of {@link RedisCounters}. */
export interface RedisCountersOptions {
  redis: RedisClient
  /** Namespace of every key, default `tkb:`. */
  prefix?: string
  now?: () => number
}

const text = (n: number | null): string => (n === null ? '' : String(n))
const num = (s: string | undefined): number | null => (s === undefined || s === '' ? null : Number(s))

/**
 * {@link Counters} shared by replicas through Redis. Each window is one key
 * (`{prefix}ctr:{<name>}`), the quota one hash (`{prefix}{quota}`): every
 * script touches a single key, so any Cluster slot will do. Redis errors are
 * thrown; the state's fallback decides what they mean.
 */
export class RedisCounters implements Counters {
  readonly #redis: RedisClient
  readonly #prefix: string
  readonly #now: () => number
  readonly #increment: RedisScript<[number, number]>
  readonly #peek: RedisScript<[number, number]>
  readonly #mergeQuota: RedisScript<string>

  constructor(options: RedisCountersOptions) {
    this.#redis = options.redis
    this.#prefix = options.prefix ?? 'tkb:'
    this.#now = options.now ?? Date.now
    this.#increment = defineScript(this.#redis, 'tkbWindowIncrement', 1, INCREMENT)
    this.#peek = defineScript(this.#redis, 'tkbWindowPeek', 1, PEEK)
    this.#mergeQuota = defineScript(this.#redis, 'tkbQuotaMerge', 1, MERGE_QUOTA)
  }

  #window(key: string): string {
    return `${this.#prefix}ctr:{${key}}`
  }

  get #quotaKey(): string {
    return `${this.#prefix}{quota}`
  }

  async increment(key: string, windowMs: number): Promise<WindowCount> {
    const [count, resetInMs] = await this.#increment([this.#window(key)], [Math.max(1, Math.floor(windowMs))])
    return { count, resetInMs }
  }

  async peek(key: string): Promise<WindowCount> {
    const [count, resetInMs] = await this.#peek([this.#window(key)], [])
    return { count, resetInMs }
  }

  async readQuota(): Promise<QuotaState | undefined> {
    const h = await this.#redis.hgetall(this.#quotaKey)
    if (h.blockedUntil === undefined) return undefined
    return { limit: num(h.limit), remaining: num(h.remaining), reset: num(h.reset), blockedUntil: Number(h.blockedUntil) }
  }

  async writeQuota(state: QuotaState): Promise<void> {
    const ttl = QUOTA_TTL_MS + Math.max(0, state.blockedUntil - this.#now())
    await this.#mergeQuota([this.#quotaKey], [text(state.limit), text(state.remaining), text(state.reset), String(state.blockedUntil), ttl])
  }

  /** The connection belongs to the state, which quits it. */
  async close(): Promise<void> {}
}
