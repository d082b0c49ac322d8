import type { FastifyBaseLogger } from 'fastify'
import { atTurnEnd } from './http/turn-end.js'
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

/** The destinations of loggers made by {@link createLogger}, with that logger: their line format is known. */
const brokerLoggers = new WeakMap<object, Logger>()
/** What decides a line's framing: a logger sharing all of these with a broker logger frames lines as it does. */
const FRAMING = [pino.symbols.mixinSym, pino.symbols.hooksSym, (pino.symbols as unknown as Record<string, symbol>).msgPrefixSym as symbol, pino.symbols.messageKeySym, pino.symbols.endSym]

/** Buffered text that is written at once rather than at the end of the turn (bytes, roughly). */
const TURN_BUFFER_LIMIT = 64 * 1024

/** Shortest time between two writes of a {@link TurnBufferedDestination} that are not forced by size, ms. */
export const LOG_WRITE_INTERVAL_MS = 10

/** How a {@link TurnBufferedDestination} paces its writes; tests set both. */
export interface TurnBufferOptions {
  /**
   * Shortest time between two writes, ms: a whole number of 0 to 2³¹ − 1 (a timer's range;
   * anything else is a RangeError); 0 writes at the end of every turn that logged.
   * Default {@link LOG_WRITE_INTERVAL_MS}.
   */
  intervalMs?: number
  /** The clock, ms (monotonic). Default `performance.now`. */
  now?: () => number
}

/** Destinations holding lines not yet written: the process's exit writes them (bounded by the destinations in use). */
const unwritten = new Set<TurnBufferedDestination>()
// Added after turn-end.ts's own exit listener (imported above), so that lines its `after` tasks log at exit are
// written too.
process.on('exit', () => {
  for (const destination of unwritten) {
    try {
      destination.flushSync()
    } catch {
      // Its output is gone (EPIPE): nothing left to tell it.
    }
  }
})

/**
 * A destination that writes what the broker logs in few writes: lines are
 * collected and handed to `out` (sonic-boom, synchronous, which deals with
 * partial writes and a full pipe) together, at the end of an event-loop turn
 * after the turn's held answers (http/turn-end.ts `after`), so a client does not
 * wait for a log write; and no sooner than `intervalMs` (10 ms) after the last
 * write, so that a broker answering one request a turn (a single keep-alive
 * client, a quiet hour's trickle) does not pay a write, and its reader a
 * wake-up, for every line. A line logged after a pause of `intervalMs` or more
 * leaves at the end of its own turn, at once; one logged sooner leaves when the
 * interval is up (a timer, which may run later when the event loop is busy),
 * with every line logged meanwhile. Text that piles up to
 * {@link TURN_BUFFER_LIMIT} is written at once, whatever the interval. Pending
 * text is written out when the process exits (`exit`: a crash by an uncaught
 * exception or rejection included); a process that dies without an `exit`
 * (SIGKILL, a fatal V8 error such as running out of heap, a signal before the
 * broker's handlers are installed) loses what was logged since the last write.
 */
export class TurnBufferedDestination implements DestinationStream {
  readonly #out: DestinationStream & { flushSync?: () => void }
  readonly #intervalMs: number
  readonly #now: () => number
  #pending = ''
  #scheduled = false
  /** When the last write was made (the clock's ms); -Infinity before the first. */
  #lastWrite = Number.NEGATIVE_INFINITY
  readonly #flushScheduled = (): void => {
    this.#scheduled = false
    unwritten.delete(this)
    this.flushSync()
  }

  constructor(out: DestinationStream, options: TurnBufferOptions = {}) {
    const intervalMs = options.intervalMs ?? LOG_WRITE_INTERVAL_MS
    if (!Number.isInteger(intervalMs) || intervalMs < 0 || intervalMs > 2 ** 31 - 1) {
      throw new RangeError(`intervalMs must be a whole number of ms from 0 to ${2 ** 31 - 1}, not ${String(intervalMs)}`)
    }
    this.#out = out
    this.#intervalMs = intervalMs
    this.#now = options.now ?? performance.now.bind(performance)
  }

  write(text: string): void {
    this.#pending += text
    if (this.#pending.length >= TURN_BUFFER_LIMIT) this.flushSync()
    else if (!this.#scheduled) {
      // Pending text implies a scheduled write, and a scheduled write a place in `unwritten` until it runs.
      this.#scheduled = true
      unwritten.add(this)
      const wait = this.#lastWrite + this.#intervalMs - this.#now()
      if (wait <= 0) atTurnEnd(this.#flushScheduled, 'after')
      // Unreferenced: pending lines do not keep a process alive; its exit writes them.
      else setTimeout(this.#flushScheduled, Math.ceil(wait)).unref()
    }
  }

  /** Writes what is pending now. */
  flushSync(): void {
    if (this.#pending === '') return
    const text = this.#pending
    this.#pending = ''
    this.#lastWrite = this.#now()
    this.#out.write(text)
  }

  /** pino's `logger.flush(cb)`. */
  flush(cb?: (err?: Error) => void): void {
    this.flushSync()
    cb?.()
  }
}

/**
 * Standard output as the default destination: at most one write(2) per event-loop
 * turn and per {@link LOG_WRITE_INTERVAL_MS} ({@link TurnBufferedDestination})
 * instead of one per line — at thousands of cache hits a second that write was the
 * largest single cost of a hit. One per process, shared by every logger writing there.
 */
export function stdoutDestination(): DestinationStream {
  stdout ??= new TurnBufferedDestination(pino.destination({ dest: 1, sync: true }))
  return stdout
}
let stdout: TurnBufferedDestination | undefined

let isoSecond = -1
let isoPrefix = ''

/**
 * pino's `timestamp` option: `,"time":"<ISO 8601 UTC, ms>"`, the same text as
 * `pino.stdTimeFunctions.isoTime`, with the part up to the seconds made once a
 * second (`Date#toISOString` on every line cost as much as the rest of the line).
 */
export function isoTime(): string {
  const now = Date.now()
  const second = Math.floor(now / 1000)
  if (second !== isoSecond) {
    isoSecond = second
    isoPrefix = `,"time":"${new Date(second * 1000).toISOString().slice(0, 20)}`
  }
  const ms = now - second * 1000
  return `${isoPrefix}${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z"`
}

/** The broker's logger: JSON lines, ISO times, secrets redacted; to standard output in few writes ({@link stdoutDestination}), unless given a destination. */
export function createLogger(level: string, destination: DestinationStream = stdoutDestination()): Logger {
  const options: LoggerOptions = {
    level,
    base: { service: 'tiktools-broker' },
    timestamp: isoTime,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  }
  const logger = pino(options, destination)
  brokerLoggers.set((logger as unknown as Record<symbol, object>)[pino.symbols.streamSym] as object, logger)
  return logger
}

/**
 * Writes one line at a level; see {@link plainLineWriter}. `fields` is a flat object, or
 * its members already written as JSON text (`"a":1,"b":"x"`, no braces; '' for none).
 */
export type PlainLineWriter = (level: 'info' | 'debug', fields: object | string, msg: string) => void

/**
 * A writer for lines whose fields are known never to hold a secret (the request
 * line): the fields (`JSON.stringify` of a flat object, or members given as JSON
 * text), framed exactly as pino frames a line of this logger
 * (`{"level":…,"time":…,"service":…,<fields>,"msg":…}`), written to the same
 * destination — without pino's generic per-key pass and its `redact` wrapper,
 * which cost several times the rest of a cache hit.
 * Honours the logger's level at each call. Undefined for a logger not made by
 * {@link createLogger} (its format is unknown): use its own methods then.
 */
export function plainLineWriter(logger: FastifyBaseLogger): PlainLineWriter | undefined {
  const p = logger as unknown as Logger & Record<symbol, unknown>
  const stream = p[pino.symbols.streamSym] as (DestinationStream & Record<symbol, unknown>) | undefined
  // A broker logger or a child of one (Fastify's `app.log` is a child) that frames lines the same way.
  const root = stream === undefined ? undefined : (brokerLoggers.get(stream) as (Logger & Record<symbol, unknown>) | undefined)
  if (stream === undefined || root === undefined || FRAMING.some((sym) => p[sym] !== root[sym])) return undefined
  // A child gets a formatters object of its own; its level and log formatters are still the root's unless it set others.
  const formatters = (l: Record<symbol, unknown>) => l[pino.symbols.formattersSym] as { level: unknown; log: unknown }
  if (formatters(p).level !== formatters(root).level || formatters(p).log !== formatters(root).log) return undefined
  // A multistream or transport wants each line's metadata: leave those to pino.
  if (stream[pino.symbols.needsMetadataGsym] === true) return undefined
  const levels = { info: 30, debug: 20 } as const
  return (level, fields, msg) => {
    const value = levels[level]
    if (p.levelVal > value) return
    const time = (p[pino.symbols.timeSym] as () => string)()
    const members = typeof fields === 'string' ? fields : JSON.stringify(fields).slice(1, -1)
    const body = members === '' ? '' : `,${members}`
    stream.write(`{"level":${value}${time}${p[pino.symbols.chindingsSym] as string}${body},"msg":${JSON.stringify(msg)}}\n`)
  }
}

/**
 * {@link plainLineWriter} where the logger's framing is known; otherwise the
 * same fields through the logger's own methods (and its redaction).
 */
export function lineWriter(logger: FastifyBaseLogger): PlainLineWriter {
  return plainLineWriter(logger) ?? ((level, fields, msg) => logger[level](typeof fields === 'string' ? (JSON.parse(`{${fields}}`) as object) : fields, msg))
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
