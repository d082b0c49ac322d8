/**
 * The headers a browser must be allowed to read on a token answer (CORS
 * `Access-Control-Expose-Headers`, Fetch standard): the upstream's quota, the
 * broker's own limit (IETF RateLimit draft names) and `Retry-After`.
 */
export const EXPOSED_HEADERS: readonly string[] = [
  'X-RateLimit-Limit',
  'X-RateLimit-Remaining',
  'X-RateLimit-Reset',
  'RateLimit-Limit',
  'RateLimit-Remaining',
  'RateLimit-Reset',
  'Retry-After',
]
