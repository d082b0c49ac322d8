import { DEFAULT_BLOCK_MS } from './ledger.js'

/** The upstream quota as its `X-RateLimit-*` headers last said. `reset` is in unix seconds. */
export interface QuotaObservation {
  limit: number
  remaining: number
  reset: number
}

type Headers = Record<string, string | string[] | undefined>

function numberHeader(headers: Headers, name: string): number | undefined {
  const raw = headers[name]
  const value = Array.isArray(raw) ? raw[0] : raw
  if (value === undefined || value.trim() === '') return undefined
  const n = Number(value)
  return Number.isFinite(n) && n >= 0 ? Math.floor(n) : undefined
}

/**
 * Reads `X-RateLimit-Limit/Remaining/Reset` from an upstream answer; undefined
 * when `Limit` or `Remaining` is missing or unreadable. `reset` comes back in unix
 * seconds whatever the upstream sent: 10^12 or more is epoch milliseconds (CONTRACT
 * "Sane values only"), below 10^9 a delay in seconds from `nowMs`. Without a usable
 * `Reset`, `Remaining: 0` still blocks: its window is taken to end
 * {@link DEFAULT_BLOCK_MS} from `nowMs` (a 429 that says neither blocks as long);
 * any other `Remaining` without one is undefined (it names no window).
 */
export function readQuotaHeaders(headers: Headers, nowMs: number): QuotaObservation | undefined {
  const limit = numberHeader(headers, 'x-ratelimit-limit')
  const remaining = numberHeader(headers, 'x-ratelimit-remaining')
  let reset = numberHeader(headers, 'x-ratelimit-reset')
  if (limit === undefined || remaining === undefined) return undefined
  if (reset === undefined) return remaining === 0 ? { limit, remaining, reset: Math.ceil(nowMs / 1000) + DEFAULT_BLOCK_MS / 1000 } : undefined
  if (reset >= 1_000_000_000_000) reset = Math.ceil(reset / 1000)
  else if (reset < 1_000_000_000) reset = Math.ceil(nowMs / 1000) + reset
  return { limit, remaining, reset }
}

/**
 * `Retry-After` of an upstream answer in milliseconds from `nowMs`, as
 * RFC 9110 section 10.2.3 allows it: delay-seconds or an HTTP-date. Undefined
 * when absent or unreadable; a date in the past is 0.
 */
export function readRetryAfter(headers: Headers, nowMs: number): number | undefined {
  const seconds = numberHeader(headers, 'retry-after')
  if (seconds !== undefined) return seconds * 1000
  const raw = headers['retry-after']
  const value = Array.isArray(raw) ? raw[0] : raw
  if (value === undefined || !/[a-z]/i.test(value)) return undefined
  const date = Date.parse(value)
  return Number.isFinite(date) ? Math.max(0, date - nowMs) : undefined
}
