import { Cluster } from 'ioredis'
import { createRequire } from 'node:module'
import type { LedgerWindowFields } from '../upstream/ledger.js'
import { WINDOW_FIELDS } from '../upstream/redis-ledger.js'
import type { RedisHealth } from './health.js'
import type { RedisClient } from './redis-client.js'
import { defineScript } from './redis-script.js'

/** What a store answers for one window: requests counted in it, and milliseconds until it ends. */
export interface RateLimitCount {
  current: number
  ttl: number
}
type Callback = (err: Error | null, result?: RateLimitCount) => void
type StoreMethod = (key: string, cb: Callback, timeWindow: number, max: number) => void

/** A request's two windows after one step: the subject's, and the tenant's unless the subject's was already over. */
export interface WindowPair {
  subject: RateLimitCount
  tenant?: RateLimitCount
  /**
   * The value of the step's read-along key (null: no such key), read in the same
   * script; absent when nothing was read: no key asked, the subject over its
   * limit, or counted in this process because Redis was away or failing.
   */
  read?: string | null
  /** The quota ledger's window as Redis holds it, read in the same script; absent when not asked or not read. */
  quota?: LedgerWindowFields
}

/**
 * The store interface @fastify/rate-limit drives (see its `store/*.js`), plus
 * `hitBoth`: the broker's subject and tenant windows counted in one atomic
 * step, one Redis round trip (answered at once by a store in this process, as a
 * promise by a shared one; never rejected: a failing Redis is counted locally).
 */
export interface RateLimitStore {
  incr: StoreMethod
  read: StoreMethod
  child(routeOptions: RateLimitParams): RateLimitStore
  /**
   * Counts `subjectKey`; unless that is now over `subjectMax`, counts `tenantKey` too (the keys share a hash slot).
   * `readAlong` (only where {@link readsAlong}) is a key of the same Redis, named in full, whose value the
   * same step reads back: a cache hit's token lookup then costs no command of its own. With it, `quotaAlong` is
   * the quota ledger's hash (QuotaLedger.readAlongKey), whose window fields the step reads back too.
   */
  hitBoth(subjectKey: string, tenantKey: string, timeWindow: number, subjectMax: number, readAlong?: string, quotaAlong?: string): WindowPair | Promise<WindowPair>
  /** True when {@link hitBoth} can read a key along: one Redis, not a Cluster (whose keys of one script must share a slot). */
  readonly readsAlong?: boolean
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
) => Omit<RateLimitStore, 'hitBoth'>
const RedisStore = require('@fastify/rate-limit/store/RedisStore') as new (
  continueExceeding: boolean | undefined,
  exponentialBackoff: boolean | undefined,
  redis: RedisClient,
  key: string,
) => Omit<RateLimitStore, 'hitBoth'>

/** Keys the local store remembers per limiter; the plugin's default 5000 is small for a subject limit. */
export const LOCAL_ENTRIES = 100_000

/**
 * Both windows in one script: the plugin's own step (INCR, PEXPIRE on the
 * first hit, else PTTL) on the subject's key, then — unless the subject is
 * over its limit, when the tenant's window is left alone — on the tenant's,
 * and then, given a third key, GET of it (a cache hit's token, read along), and given a fourth, the quota
 * ledger's window fields (HMGET, read along: a hit's `X-RateLimit-*` are then the shared ledger's own).
 * Same keys and same counts as two plugin calls, so replicas of either kind share windows.
 */
const HIT_BOTH = `
local window = tonumber(ARGV[1])
local subjectMax = tonumber(ARGV[2])
local function hit(key)
  local current = redis.call('INCR', key)
  if current == 1 then
    redis.call('PEXPIRE', key, window)
    return current, window
  end
  return current, redis.call('PTTL', key)
end
local s, sttl = hit(KEYS[1])
if s > subjectMax then return {s, sttl} end
local t, tttl = hit(KEYS[2])
if KEYS[4] then return {s, sttl, t, tttl, redis.call('GET', KEYS[3]), redis.call('HMGET', KEYS[4], ${WINDOW_FIELDS.map((f) => `'${f}'`).join(', ')})} end
if KEYS[3] then return {s, sttl, t, tttl, redis.call('GET', KEYS[3])} end
return {s, sttl, t, tttl}
`

type StepReply = ReadonlyArray<number | string | null | undefined | LedgerWindowFields>

const pairOf = ([s = 0, sttl = 0, t, tttl, read, quota]: StepReply): WindowPair => {
  const subject = { current: s as number, ttl: sttl as number }
  if (t === undefined) return { subject }
  const tenant = { current: t as number, ttl: (tttl as number | undefined) ?? 0 }
  if (read === undefined) return { subject, tenant }
  return quota === undefined ? { subject, tenant, read: read as string | null } : { subject, tenant, read: read as string | null, quota: quota as LedgerWindowFields }
}

/** A @fastify/rate-limit `store` class counting in this process (a bounded LRU of fixed windows). */
export class LocalRateLimitStore implements RateLimitStore {
  readonly #local: Omit<RateLimitStore, 'hitBoth'>

  constructor(params: RateLimitParams = {}, entries = LOCAL_ENTRIES) {
    this.#local = new LocalStore(params.continueExceeding, params.exponentialBackoff, entries)
  }

  incr(key: string, cb: Callback, timeWindow: number, max: number): void {
    this.#local.incr(key, cb, timeWindow, max)
  }

  read(key: string, cb: Callback, timeWindow: number, max: number): void {
    this.#local.read(key, cb, timeWindow, max)
  }

  child(): RateLimitStore {
    return this
  }

  hitBoth(subjectKey: string, tenantKey: string, timeWindow: number, subjectMax: number): WindowPair {
    // LocalStore answers synchronously: no other request can step in between the two counts.
    let subject: RateLimitCount | undefined
    let tenant: RateLimitCount | undefined
    this.#local.incr(subjectKey, (_e, r) => (subject = { current: r?.current ?? 0, ttl: r?.ttl ?? 0 }), timeWindow, subjectMax)
    const s = subject as RateLimitCount
    if (s.current > subjectMax) return { subject: s }
    this.#local.incr(tenantKey, (_e, r) => (tenant = { current: r?.current ?? 0, ttl: r?.ttl ?? 0 }), timeWindow, Number.MAX_SAFE_INTEGER)
    return tenant === undefined ? { subject: s } : { subject: s, tenant }
  }
}

/**
 * A @fastify/rate-limit `store` class counting in Redis (keys `tkb:rl:…`; the
 * limits plugin puts the tenant in a hash tag) and, while Redis errors or is
 * away, in this process: limits are then enforced per replica, never skipped.
 *
 * @example
 * await app.register(limits, { store: sharedRateLimitStore(connection.client, connection) })
 */
export function sharedRateLimitStore(redis: RedisClient, health: RedisHealth, prefix = 'tkb:rl:'): new (params: RateLimitParams) => RateLimitStore {
  const hitBoth = defineScript<StepReply>(redis, 2, HIT_BOTH)
  // The same script with a third key read along: its value (false in Lua, null here, when there is none) comes fifth;
  // with a fourth, the quota ledger's window fields come sixth.
  const hitBothRead = defineScript<StepReply>(redis, 3, HIT_BOTH)
  const hitBothReadQuota = defineScript<StepReply>(redis, 4, HIT_BOTH)
  const readsAlong = !(redis instanceof Cluster)

  class SharedRateLimitStore implements RateLimitStore {
    readonly readsAlong = readsAlong
    readonly #shared: Omit<RateLimitStore, 'hitBoth'>
    readonly #local: LocalRateLimitStore
    readonly #namespace: string

    constructor(params: RateLimitParams, namespace = prefix) {
      this.#namespace = namespace
      this.#shared = new RedisStore(params.continueExceeding, params.exponentialBackoff, redis, namespace)
      this.#local = new LocalRateLimitStore(params)
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

    hitBoth(subjectKey: string, tenantKey: string, timeWindow: number, subjectMax: number, readAlong?: string, quotaAlong?: string): WindowPair | Promise<WindowPair> {
      if (!health.available) return this.#local.hitBoth(subjectKey, tenantKey, timeWindow, subjectMax)
      const subject = this.#namespace + subjectKey
      const tenant = this.#namespace + tenantKey
      const step =
        readAlong === undefined || !readsAlong
          ? hitBoth([subject, tenant], [timeWindow, subjectMax])
          : quotaAlong === undefined
            ? hitBothRead([subject, tenant, readAlong], [timeWindow, subjectMax])
            : hitBothReadQuota([subject, tenant, readAlong, quotaAlong], [timeWindow, subjectMax])
      return step.then(pairOf, (err: Error) => {
        health.noteFailure(err)
        return this.#local.hitBoth(subjectKey, tenantKey, timeWindow, subjectMax)
      })
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
