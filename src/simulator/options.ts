import { randomBytes } from 'node:crypto'

/** Options of `startSimulator`; every field has a default. */
export interface SimulatorOptions {
  /** Listen address, default `'127.0.0.1'`. */
  host?: string
  /** Listen port, default `0` (a random free port). */
  port?: number
  /** Accepted apiKey values; default: any non-empty apiKey is accepted. */
  apiKeys?: string[]
  /** Per-minute mint quota per apiKey, default 60. */
  perMinute?: number
  /** Per-day mint quota per apiKey, default 10000. */
  perDay?: number
  /** HS256 secret for minted JWTs; default 32 random bytes (base64url). */
  secret?: string
  /** Millisecond clock for tokens and quota windows (tests); default `Date.now`. */
  now?: () => number
  /** WebSocket event cadence in ms, default 1000. */
  eventIntervalMs?: number
  /** Expose the `/__sim/*` control endpoints, default true. */
  control?: boolean
  /** Fastify request logging (apiKey and jwtKey redacted), default false. */
  logger?: boolean
}

/** {@link SimulatorOptions} with defaults applied, validated once at start. */
export interface ResolvedOptions {
  host: string
  port: number
  /** `undefined` means any non-empty key is accepted. */
  apiKeys: ReadonlySet<string> | undefined
  perMinute: number
  perDay: number
  secret: string
  now: () => number
  eventIntervalMs: number
  control: boolean
  logger: boolean
}

/** Applies the defaults and rejects nonsense early, naming the option. */
export function resolveOptions(opts: SimulatorOptions = {}): ResolvedOptions {
  const port = opts.port ?? 0
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new TypeError(`simulator option port must be an integer 0-65535, got ${String(port)}`)
  }
  if (opts.secret !== undefined && opts.secret.length === 0) {
    throw new TypeError('simulator option secret must not be empty')
  }
  return {
    host: opts.host ?? '127.0.0.1',
    port,
    apiKeys: opts.apiKeys === undefined ? undefined : new Set(opts.apiKeys.filter((k) => k.length > 0)),
    perMinute: positiveInteger('perMinute', opts.perMinute ?? 60),
    perDay: positiveInteger('perDay', opts.perDay ?? 10_000),
    secret: opts.secret ?? randomBytes(32).toString('base64url'),
    now: opts.now ?? Date.now,
    eventIntervalMs: positiveInteger('eventIntervalMs', opts.eventIntervalMs ?? 1000),
    control: opts.control ?? true,
    logger: opts.logger ?? false,
  }
}

/** Whether the simulator accepts this apiKey (query values may be missing or repeated). */
export function acceptsApiKey(options: ResolvedOptions, key: unknown): key is string {
  if (typeof key !== 'string' || key.length === 0) return false
  return options.apiKeys === undefined || options.apiKeys.has(key)
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new TypeError(`simulator option ${name} must be a positive integer, got ${String(value)}`)
  }
  return value
}
