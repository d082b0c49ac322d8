import { Redis } from 'ioredis'
import type { FastifyBaseLogger } from 'fastify'
import type { ReadinessCheck } from '../routes/health.js'
import type { RedisHealth } from './health.js'

/** Timings of the shared connection; the defaults suit a Redis on the same network. */
export interface RedisConnectionOptions {
  /** Every command's bound: a slow Redis must not hold a request. Default 400 ms. */
  commandTimeoutMs?: number
  connectTimeoutMs?: number
  /** Longest pause between reconnect attempts, which go on forever. Default 1000 ms. */
  maxRetryDelayMs?: number
  /** How long a timed-out Redis is left alone before a PING probes it. Default 1000 ms. */
  probeAfterMs?: number
}

type Condition = 'starting' | 'up' | 'down' | 'slow'

const ERROR_LOG_INTERVAL_MS = 60_000

/** `host:port/db` of a Redis URL, never its password. */
function describe(url: string): string {
  const u = new URL(url)
  return `${u.host}${u.pathname === '/' ? '' : u.pathname}`
}

/**
 * The one ioredis client of a broker, configured to fail fast (no offline
 * queue, bounded commands, endless capped reconnects), and its health: every
 * change is logged once, never per command.
 */
export class RedisConnection implements RedisHealth {
  readonly client: Redis
  readonly #log: FastifyBaseLogger
  readonly #target: string
  readonly #probeAfterMs: number
  readonly #recover = new Set<() => void>()
  #condition: Condition = 'starting'
  #probe: NodeJS.Timeout | undefined
  #closing: Promise<void> | undefined
  #lastErrorLog = -Infinity

  constructor(url: string, log: FastifyBaseLogger, options: RedisConnectionOptions = {}) {
    this.#log = log
    this.#target = describe(url)
    this.#probeAfterMs = options.probeAfterMs ?? 1000
    const maxDelay = options.maxRetryDelayMs ?? 1000
    this.client = new Redis(url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: options.commandTimeoutMs ?? 400,
      connectTimeout: options.connectTimeoutMs ?? 2000,
      // A command cut off by a lost connection is not sent again: an INCR could count twice.
      autoResendUnfulfilledCommands: false,
      retryStrategy: (attempt) => Math.min(50 * attempt, maxDelay),
      lazyConnect: false,
      connectionName: 'tiktools-broker',
    })
    this.client.on('ready', () => this.#become('up'))
    this.client.on('error', (err: Error) => this.#become('down', err))
    this.client.on('close', () => this.#become('down'))
  }

  /** Connects, waiting at most `connectTimeoutMs` for the first answer; a Redis that is down does not stop the start. */
  static async open(url: string, log: FastifyBaseLogger, options: RedisConnectionOptions = {}): Promise<RedisConnection> {
    const connection = new RedisConnection(url, log, options)
    const { client } = connection
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        client.off('ready', done).off('error', done)
        resolve()
      }
      const timer = setTimeout(done, options.connectTimeoutMs ?? 2000)
      client.once('ready', done).once('error', done)
    })
    if (connection.#condition === 'starting') connection.#become('down')
    return connection
  }

  get available(): boolean {
    return this.#condition === 'up' && this.client.status === 'ready'
  }

  noteFailure(err: unknown): void {
    if (!this.available) return
    const message = err instanceof Error ? err.message : String(err)
    if (/timed out/i.test(message)) {
      // Connected but not answering: stop paying the timeout on every request; probe instead.
      this.#become('slow', err as Error)
      this.#scheduleProbe()
    } else if (Date.now() - this.#lastErrorLog >= ERROR_LOG_INTERVAL_MS) {
      // Answering, but refusing (OOM, READONLY, ...): each call falls back; say so, not every time.
      this.#lastErrorLog = Date.now()
      this.#log.warn({ redis: this.#target, reason: message }, 'redis command failed; served from local state (logged at most once a minute)')
    }
  }

  onRecover(listener: () => void): void {
    this.#recover.add(listener)
  }

  /** `/readyz`: a PING, bounded by the command timeout. */
  readonly readiness: ReadinessCheck = async () => {
    if (!this.available) return 'redis: unavailable'
    try {
      await this.client.ping()
      return undefined
    } catch (err) {
      this.noteFailure(err)
      return 'redis: unavailable'
    }
  }

  /** Quits the connection (once, however often called); a Redis that is away is simply disconnected. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearTimeout(this.#probe)
      if (this.client.status === 'ready') {
        await Promise.race([this.client.quit().catch(() => undefined), new Promise((r) => setTimeout(r, 500).unref())])
      }
      this.client.disconnect()
    })()
    return this.#closing
  }

  #scheduleProbe(): void {
    clearTimeout(this.#probe)
    if (this.#closing !== undefined) return
    this.#probe = setTimeout(() => {
      this.client.ping().then(
        () => this.#condition === 'slow' && this.#become('up'),
        () => this.#condition === 'slow' && this.#scheduleProbe(),
      )
    }, this.#probeAfterMs)
    this.#probe.unref()
  }

  #become(next: Condition, err?: Error): void {
    const previous = this.#condition
    if (next === previous || this.#closing !== undefined) return
    // Once down, only 'ready' brings it back: a timeout while down changes nothing.
    if (next === 'slow' && previous !== 'up') return
    this.#condition = next
    const fields = { redis: this.#target, ...(err !== undefined && { reason: err.message }) }
    if (next === 'up') {
      clearTimeout(this.#probe)
      this.#log.info(fields, previous === 'starting' ? 'redis connected' : 'redis available again; sharing state')
      if (previous !== 'starting') for (const listener of this.#recover) listener()
    } else if (next === 'slow') {
      this.#log.warn(fields, 'redis is not answering in time; using local state until it does')
    } else {
      this.#log.warn(fields, 'redis unavailable; using local state (cache, locks, limits) until it returns')
    }
  }
}
