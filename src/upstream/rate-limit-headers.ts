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
 * when any is missing. A `Reset` that looks like a delay (below 10^9) rather
 * than a unix time is turned into one.
 */
export function readQuotaHeaders(headers: Headers, nowMs: number): QuotaObservation | undefined {
  const limit = numberHeader(headers, 'x-ratelimit-limit')
  const remaining = numberHeader(headers, 'x-ratelimit-remaining')
  let reset = numberHeader(headers, 'x-ratelimit-reset')
  if (limit === undefined || remaining === undefined || reset === undefined) return undefined
  if (reset < 1_000_000_000) reset = Math.ceil(nowMs / 1000) + reset
  return { limit, remaining, reset }
}

/** `Retry-After` in seconds from an upstream answer, when it gives one as a number. */
export function readRetryAfter(headers: Headers): number | undefined {
  return numberHeader(headers, 'retry-after')
}
