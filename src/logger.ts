import type { FastifyBaseLogger } from 'fastify'
import { pino, type Bindings, type ChildLoggerOptions, type DestinationStream, type Logger, type LoggerOptions } from 'pino'

/**
 * Paths pino blanks out wherever they appear in a log object. Nothing the
 * broker logs should hold a secret; this is the net under that rule.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'authorization',
  'apiKey',
  'token',
  'jwtKey',
  'secret',
  'adminToken',
  'password',
  '*.authorization',
  '*.apiKey',
  '*.token',
  '*.jwtKey',
  '*.secret',
  '*.adminToken',
  '*.password',
  '*.TIKTOOLS_API_KEY',
  '*.ADMIN_TOKEN',
  '*.CACHE_ENCRYPTION_KEY',
  '*.AUTH_JWT_SECRET',
]

/** The broker's logger: JSON lines, ISO times, secrets redacted. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options: LoggerOptions = {
    level,
    base: { service: 'tiktools-broker' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  }
  return destination === undefined ? pino(options) : pino(options, destination)
}

const METHODS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

/**
 * Fastify's `childLoggerFactory`: a request's logger that becomes a real pino
 * child (with its `reqId` binding) only when something logs through it. Most
 * requests log nothing but their request line, which does not need one.
 */
export function lazyChildLogger(this: unknown, logger: FastifyBaseLogger, bindings: Bindings, opts: ChildLoggerOptions): FastifyBaseLogger {
  return new LazyChild(logger, bindings, opts) as unknown as FastifyBaseLogger
}

class LazyChild {
  readonly #parent: FastifyBaseLogger
  readonly #bindings: Bindings
  readonly #opts: ChildLoggerOptions
  #real: FastifyBaseLogger | undefined

  constructor(parent: FastifyBaseLogger, bindings: Bindings, opts: ChildLoggerOptions) {
    this.#parent = parent
    this.#bindings = bindings
    this.#opts = opts
  }

  get real(): FastifyBaseLogger {
    return (this.#real ??= this.#parent.child(this.#bindings, this.#opts))
  }

  get level(): string {
    return this.#real?.level ?? this.#opts.level ?? this.#parent.level
  }

  set level(level: string) {
    this.real.level = level
  }

  child(bindings: Bindings, opts?: ChildLoggerOptions): FastifyBaseLogger {
    return this.real.child(bindings, opts)
  }

  isLevelEnabled(level: string): boolean {
    return (this.real as unknown as Logger).isLevelEnabled(level)
  }
}
for (const method of METHODS) {
  Object.defineProperty(LazyChild.prototype, method, {
    value(this: LazyChild, ...args: unknown[]) {
      ;(this.real[method] as (...a: unknown[]) => void)(...args)
    },
  })
}
