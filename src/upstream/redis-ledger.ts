import type { RedisClient } from '../state/redis-client.js'
import { defineScript, type RedisScript } from '../state/redis-script.js'
import { EMPTY_LEDGER, type Admission, type LedgerState, type LedgerWindowFields } from './ledger.js'
import type { QuotaLedger, Reservation, ReserveResult } from './quota-ledger.js'
import { randomUUID } from 'node:crypto'

/*
 * One script for every ledger call, so that reading, joining, deciding and
 * writing are one atomic step. It mirrors `joinLedger` and `admit` of
 * ledger.ts line for line; `test/upstream/ledger.property.test.ts` runs both
 * on the same random inputs. Both keys share the hash tag: one Cluster slot.
 *   KEYS[1] hash  {prefix}{quota:<keyId>}         the state
 *   KEYS[2] zset  {prefix}{quota:<keyId>}:flight  reservation id → epoch ms it lapses
 *   ARGV    mode ('reserve' | 'record' | 'read'), now, known state (6 fields,
 *           '' for null), reservation id, lapse (epoch ms), idle TTL (ms)
 * Numbers are doubles in Lua: exact for every epoch-ms value; written with %.0f.
 */
const LEDGER = `
local function num(v) if v == nil or v == false or v == '' then return nil end return tonumber(v) end
local function fmt(v) if v == nil then return '' end return string.format('%.0f', v) end
local mode, now = ARGV[1], tonumber(ARGV[2])
local h = redis.call('HMGET', KEYS[1], 'limit', 'remaining', 'reset', 'blockedUntil', 'blockSince', 'clearedAt')
local a = {limit = num(h[1]), remaining = num(h[2]), reset = num(h[3]),
  blockedUntil = num(h[4]) or 0, blockSince = num(h[5]) or 0, clearedAt = num(h[6]) or 0}
local b = {limit = num(ARGV[3]), remaining = num(ARGV[4]), reset = num(ARGV[5]),
  blockedUntil = num(ARGV[6]) or 0, blockSince = num(ARGV[7]) or 0, clearedAt = num(ARGV[8]) or 0}
-- joinLedger
local ra, rb = a.reset or -1, b.reset or -1
local s = {}
if ra > rb then s.reset, s.limit, s.remaining = a.reset, a.limit, a.remaining
elseif rb > ra then s.reset, s.limit, s.remaining = b.reset, b.limit, b.remaining
else
  s.reset = a.reset
  if a.limit == nil then s.limit = b.limit elseif b.limit == nil then s.limit = a.limit else s.limit = math.max(a.limit, b.limit) end
  if a.remaining == nil then s.remaining = b.remaining elseif b.remaining == nil then s.remaining = a.remaining else s.remaining = math.min(a.remaining, b.remaining) end
end
s.clearedAt = math.max(a.clearedAt, b.clearedAt)
s.blockSince = math.max(a.blockSince, b.blockSince)
s.blockedUntil = math.max(a.blockedUntil, b.blockedUntil)
if s.clearedAt > s.blockSince then s.blockSince = 0 s.blockedUntil = 0 end
-- reservations that lapsed are gone; a recorded one is released
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if mode == 'record' and ARGV[9] ~= '' then redis.call('ZREM', KEYS[2], ARGV[9]) end
local inflight = redis.call('ZCARD', KEYS[2])
-- admit
local ok, reason, wait = -1, '', 0
if mode == 'reserve' then
  ok = 1
  if s.blockedUntil > now and s.blockSince >= s.clearedAt then ok, reason, wait = 0, 'blocked', s.blockedUntil - now
  elseif s.reset ~= nil and s.reset * 1000 > now and s.remaining ~= nil then
    if s.remaining == 0 then
      if inflight > 0 then ok, reason, wait = 0, 'spent', 1000 end
    elseif inflight >= s.remaining then ok, reason, wait = 0, 'spent', 1000 end
  elseif s.limit ~= nil and s.limit > 0 and inflight >= s.limit then ok, reason, wait = 0, 'spent', 1000 end
  if ok == 1 then
    redis.call('ZADD', KEYS[2], ARGV[10], ARGV[9])
    inflight = inflight + 1
    local lapse = redis.call('PTTL', KEYS[2])
    if lapse < tonumber(ARGV[10]) - now then redis.call('PEXPIRE', KEYS[2], math.max(1, tonumber(ARGV[10]) - now)) end
  end
end
if mode ~= 'read' or b.blockedUntil > 0 or b.clearedAt > 0 or b.reset ~= nil then
  redis.call('HSET', KEYS[1], 'limit', fmt(s.limit), 'remaining', fmt(s.remaining), 'reset', fmt(s.reset),
    'blockedUntil', fmt(s.blockedUntil), 'blockSince', fmt(s.blockSince), 'clearedAt', fmt(s.clearedAt))
  local keep = math.max(s.blockedUntil - now, (s.reset or 0) * 1000 - now, 0) + tonumber(ARGV[11])
  redis.call('PEXPIRE', KEYS[1], string.format('%.0f', keep))
end
return {ok, reason, fmt(wait), inflight, fmt(s.limit), fmt(s.remaining), fmt(s.reset), fmt(s.blockedUntil), fmt(s.blockSince), fmt(s.clearedAt)}`

type LedgerReply = [number, string, string, number, string, string, string, string, string, string]

/** The hash fields of the state's window, in the order ledger.ts `windowOf` reads them (a script may HMGET them along). */
export const WINDOW_FIELDS = ['limit', 'remaining', 'reset'] as const

/** How long the state outlives its block and window: a day, so a quiet night does not forget a daily quota. */
const IDLE_TTL_MS = 26 * 3600 * 1000

const text = (n: number | null): string => (n === null ? '' : String(n))
const orNull = (s: string): number | null => (s === '' ? null : Number(s))

/** Options of {@link RedisLedger}. */
export interface RedisLedgerOptions {
  redis: RedisClient
  /** Names this API key's ledger without naming the key (a keyed hash). */
  keyId: string
  /** Namespace of every key, default `tkb:`. */
  prefix?: string
}

/**
 * {@link QuotaLedger} shared by every replica through Redis: one hash for the
 * state, one sorted set for the reservations in flight, one Lua script for
 * each call. Redis errors are thrown; the state's FallbackLedger decides what they mean.
 */
export class RedisLedger implements QuotaLedger {
  readonly #keys: [string, string]
  readonly #script: RedisScript<LedgerReply>
  readonly #redis: RedisClient
  /** The state's hash: a cache hit's count reads its window fields along (QuotaLedger.readAlongKey). */
  readonly readAlongKey: string

  constructor(options: RedisLedgerOptions) {
    const hash = `${options.prefix ?? 'tkb:'}{quota:${options.keyId}}`
    this.readAlongKey = hash
    this.#redis = options.redis
    this.#keys = [hash, `${hash}:flight`]
    this.#script = defineScript(options.redis, 2, LEDGER)
  }

  async reserve(now: number, ttlMs: number, known: LedgerState = EMPTY_LEDGER): Promise<ReserveResult> {
    const id = randomUUID()
    const reply = await this.#call('reserve', now, known, id, now + ttlMs)
    const state = stateOf(reply)
    const [ok, reason, wait] = reply
    if (ok === 1) return { admission: { ok: true, probe: state.remaining === 0 }, state, reservation: { id, shared: true } }
    const admission: Admission = { ok: false, reason: reason === 'blocked' ? 'blocked' : 'spent', retryAfterMs: Number(wait) }
    return { admission, state }
  }

  async record(reservation: Reservation | undefined, observed: LedgerState, now: number): Promise<LedgerState> {
    return stateOf(await this.#call('record', now, observed, reservation?.shared === true ? reservation.id : '', 0))
  }

  async read(now: number, known: LedgerState = EMPTY_LEDGER): Promise<LedgerState> {
    return stateOf(await this.#call('read', now, known, '', 0))
  }

  /** The window fields alone, one HMGET (QuotaLedger.readWindow): for a Cluster's cache hit, beside its other commands. */
  readWindow(): Promise<LedgerWindowFields> {
    return this.#redis.hmget(this.readAlongKey, ...WINDOW_FIELDS) as unknown as Promise<LedgerWindowFields>
  }

  /** The connection belongs to the state, which quits it. */
  async close(): Promise<void> {}

  #call(mode: string, now: number, s: LedgerState, id: string, lapse: number): Promise<LedgerReply> {
    return this.#script(this.#keys, [
      mode,
      Math.floor(now),
      text(s.limit),
      text(s.remaining),
      text(s.reset),
      s.blockedUntil,
      s.blockSince,
      s.clearedAt,
      id,
      Math.floor(lapse),
      IDLE_TTL_MS,
    ])
  }
}

function stateOf(reply: LedgerReply): LedgerState {
  return {
    limit: orNull(reply[4]),
    remaining: orNull(reply[5]),
    reset: orNull(reply[6]),
    blockedUntil: Number(reply[7]),
    blockSince: Number(reply[8]),
    clearedAt: Number(reply[9]),
  }
}
