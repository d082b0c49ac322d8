import { randomBytes } from 'node:crypto'
import { Cluster } from 'ioredis'
import type { FastifyBaseLogger } from 'fastify'
import { describeRedisTarget, type RedisTarget } from '../config/redis-target.js'
import type { ReadinessCheck } from '../routes/health.js'
import { Availability, type Change, type Condition } from './availability.js'
import { COMMAND_TIMED_OUT } from './command-deadline.js'
import type { RedisHealth } from './health.js'
import { createRedisClient, tagsOnEveryPrimary, type RedisClient, type RedisClientOptions } from './redis-client.js'

/** Timings of the shared connection; the defaults suit a Redis on the same network. */
export interface RedisConnectionOptions extends RedisClientOptions {
  /** How often an unavailable Redis is probed with a write. Default 1000 ms. */
  probeAfterMs?: number
  /** Namespace of the health key this process writes, default `tkb:`. */
  keyPrefix?: string
}

const ERROR_LOG_INTERVAL_MS = 60_000
/**
 * How long a dropped connection may take to be ready again before it is an
 * outage (ms). ioredis reconnects 50 ms after a close; a Redis that took
 * writes a moment ago is back within a few round trips of that.
 */
export const RECONNECT_GRACE_MS = 1000
/** A grace timer that fires this much after its due time (ms) came late: the process stood still meanwhile. */
const LATE_TIMER_MS = 50
/** The health key outlives a few probes, never more. */
const HEALTH_TTL_MS = 30_000

// Answers that mean "no writable primary here right now": an outage, not a failed call.
const REPLICA = /^(READONLY|MASTERDOWN|NOREPLICAS)\b|can't write against a read only replica/
// Answers of a primary that refuses writes for now: MISCONF (an RDB save failed, `stop-writes-on-bgsave-error`), OOM
// (`maxmemory` reached under `noeviction`). An outage too: every token written would be lost, every miss a mint.
const WRITES_REFUSED = /^(MISCONF|OOM)\b/
const NO_PRIMARY = /^(CLUSTERDOWN|LOADING|TRYAGAIN)\b|isn't writeable|isn't ready|Connection is closed|All sentinels are unreachable|ECONNREFUSED|ECONNRESET|EPIPE/

// A write that never reached Redis because this connection is closing or closed (ioredis's own messages): no news about Redis itself.
const NOT_SENT = /^Stream isn't writeable|^Connection is closed/

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err))
const TIMED_OUT = new RegExp(COMMAND_TIMED_OUT, 'i')

/** What a failed write says about Redis. */
function conditionOf(err: unknown): Condition {
  const message = messageOf(err)
  return REPLICA.test(message) ? 'replica' : WRITES_REFUSED.test(message) ? 'refusing' : TIMED_OUT.test(message) ? 'slow' : 'down'
}

/**
 * The one ioredis client of a broker (one Redis, a Sentinel-managed primary
 * or a Cluster) and its health. Available means "writes work": the client is
 * connected and a write to this process's health key succeeded. A refused
 * write (READONLY after a failover) is an outage that a probe ends as soon as
 * the client has found a writable primary. A command that fails while Redis
 * is available makes it suspect: requests use local state, and a probe sent
 * at once decides, so one slow answer costs one round trip of local state,
 * not a logged outage. A connection that closes while Redis is available
 * is suspect the same way: ioredis connects again at once, and the outage is
 * logged only if that fails or is not ready within {@link RECONNECT_GRACE_MS}
 * (a `CLIENT KILL`, an idle timeout, or a Sentinel's `+switch-master` that
 * arrives after the client already found the new primary). Every change of
 * availability is logged once, never per command.
 */
export class RedisConnection implements RedisHealth {
  readonly client: RedisClient
  /** The form and addresses, for logs and `/readyz`; never a password. */
  readonly target: string
  readonly #log: FastifyBaseLogger
  readonly #probeAfterMs: number
  readonly #restartAfterMs: number
  readonly #healthTag: string
  readonly #prefix: string
  readonly #recover = new Set<() => void>()
  readonly #settled: Promise<void>
  readonly #availability = new Availability()
  /** A Cluster client (its close means no node is left) rather than one Redis's (one connection). */
  readonly #cluster: boolean
  #settle: () => void = () => {}
  #reason: string | undefined
  #probe: NodeJS.Timeout | undefined
  /** While suspect after a lost connection: ends the wait for the reconnect. */
  #grace: NodeJS.Timeout | undefined
  /** When ioredis began its first connection attempt since the connection was lost (`performance.now()`, ms). */
  #attemptAt: number | undefined
  /** INFO's `run_id` of the Redis last verified (one Redis, not a Cluster): a new one means another server process. */
  #runId: string | undefined
  #closing: Promise<void> | undefined
  #lastErrorLog = -Infinity
  /** Waiters for the current suspicion's decision (see {@link decided}). */
  readonly #deciding = new Set<() => void>()

  constructor(target: RedisTarget | string, log: FastifyBaseLogger, options: RedisConnectionOptions = {}) {
    const t: RedisTarget = typeof target === 'string' ? { kind: 'url', url: target, tls: false } : target
    this.#log = log
    this.target = describeRedisTarget(t)
    this.#probeAfterMs = options.probeAfterMs ?? 1000
    this.#restartAfterMs = options.maxRetryDelayMs ?? 1000
    this.#prefix = options.keyPrefix ?? 'tkb:'
    this.#healthTag = `health:${randomBytes(6).toString('hex')}`
    this.#settled = new Promise((resolve) => (this.#settle = resolve))
    // A replica-role answer (READONLY after a demotion) is an outage with its own reason, whatever the reconnect then says.
    this.client = createRedisClient(t, { ...options, onReplicaRole: (err) => this.#observe('replica', err) })
    this.#cluster = this.client instanceof Cluster
    this.client.on('ready', () => void this.#verify())
    this.client.on('error', (err: Error) => {
      // Not ready: the attempt failed (refused, timed out, AUTH), unless one Redis's stream merely ended under its handshake.
      if (this.client.status !== 'ready' && (this.#cluster || !NOT_SENT.test(err.message))) return this.#observe('down', err)
      // Ready: a Cluster reports a failed slot refresh as an error while it still serves (its 'close' says when it does not);
      // one Redis, an error of the serving connection (EPIPE, ECONNRESET) before its close: the reconnect decides.
      if (!this.#cluster) this.#connectionLost()
    })
    // A Cluster's close means every node is gone (it reconnects through its startup nodes); one Redis's, one connection.
    this.client.on('close', () => (this.#cluster ? this.#observe('down') : this.#connectionLost()))
    this.client.on('connecting', () => (this.#attemptAt ??= performance.now()))
    this.client.on('end', () => this.#restart())
  }

  /**
   * Connects, waiting at most `connectTimeoutMs` for a first writable answer;
   * a Redis that is down (or read-only) does not stop the start.
   *
   * @example
   * const connection = await RedisConnection.open({ kind: 'sentinel', name: 'mymaster', sentinels, tls: false }, log)
   */
  static async open(target: RedisTarget | string, log: FastifyBaseLogger, options: RedisConnectionOptions = {}): Promise<RedisConnection> {
    const connection = new RedisConnection(target, log, options)
    let timer: NodeJS.Timeout | undefined
    await Promise.race([connection.#settled, new Promise<void>((resolve) => (timer = setTimeout(resolve, options.connectTimeoutMs ?? 2000)))])
    clearTimeout(timer)
    if (connection.#availability.condition === 'starting') connection.#observe('down')
    return connection
  }

  get available(): boolean {
    return this.#availability.condition === 'up' && this.client.status === 'ready'
  }

  noteFailure(err: unknown): void {
    if (!this.available) return
    const message = messageOf(err)
    if (TIMED_OUT.test(message) || REPLICA.test(message) || WRITES_REFUSED.test(message) || NO_PRIMARY.test(message)) {
      // Suspect: local state for now (no request waits on a Redis that may be slow); a write sent now decides.
      this.#apply(this.#availability.suspect())
      void this.#verify()
    } else if (Date.now() - this.#lastErrorLog >= ERROR_LOG_INTERVAL_MS) {
      // Answering, but refusing this call (OOM, a script error, ...): each call falls back; say so, not every time.
      this.#lastErrorLog = Date.now()
      this.#log.warn({ redis: this.target, reason: message }, 'redis command failed; served from local state (logged at most once a minute)')
    }
  }

  onRecover(listener: () => void): void {
    this.#recover.add(listener)
  }

  /**
   * Resolves once Redis is no longer only suspect (a probe or the reconnect
   * decided, whichever way), or after `maxMs` (ms), whichever comes first; at
   * once when it is not suspect. Never rejects.
   */
  decided(maxMs: number): Promise<void> {
    if (this.#availability.condition !== 'suspect' || this.#closing !== undefined) return Promise.resolve()
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        this.#deciding.delete(done)
        resolve()
      }
      const timer = setTimeout(done, maxMs)
      this.#deciding.add(done)
    })
  }

  #decide(): void {
    for (const done of [...this.#deciding]) done()
  }

  /** `/readyz`: a write (SET with PX on this process's health key), bounded by the command timeout. */
  readonly readiness: ReadinessCheck = async () => {
    const condition = this.#availability.condition
    if (!this.available && !(condition === 'suspect' && this.client.status === 'ready')) return this.#unready(condition)
    try {
      await this.#write()
      return undefined
    } catch (err) {
      this.noteFailure(err)
      this.#reason = messageOf(err)
      return this.#unready(conditionOf(err))
    }
  }

  /** Quits the connection (once, however often called); a Redis that is away is simply disconnected. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearTimeout(this.#probe)
      clearTimeout(this.#grace)
      this.#settle()
      this.#decide()
      if (this.client.status === 'ready') {
        await Promise.race([this.client.quit().catch(() => undefined), new Promise((r) => setTimeout(r, 500).unref())])
      }
      this.client.disconnect()
    })()
    return this.#closing
  }

  #unready(condition: Condition): string {
    const why =
      condition === 'replica' ? 'writes refused (a replica; waiting for a primary)'
      : condition === 'refusing' ? 'writes refused'
      : condition === 'slow' ? 'not answering in time'
      : 'not connected'
    return `redis: unavailable, ${why} [${this.target}]${this.#reason !== undefined ? `: ${this.#reason}` : ''}`
  }

  /** One write per primary: the health key, expiring by itself. */
  async #write(): Promise<void> {
    const client = this.client
    if (client instanceof Cluster) {
      const tags = tagsOnEveryPrimary(client, this.#healthTag)
      if (tags.length === 0) throw new Error('CLUSTERDOWN the slot map is not known yet')
      await Promise.all(tags.map((tag) => client.set(`${this.#prefix}{${tag}}`, '1', 'PX', HEALTH_TTL_MS)))
    } else {
      await client.set(`${this.#prefix}{${this.#healthTag}}`, '1', 'PX', HEALTH_TTL_MS)
    }
  }

  /** A probe: available once a write goes through, unless other evidence came in while it was on its way. */
  async #verify(): Promise<void> {
    const ticket = this.#availability.probe()
    let found: Condition = 'up'
    let error: unknown
    let runId: string | undefined
    try {
      const client = this.client
      if (client instanceof Cluster) await this.#write()
      // INFO may be refused (an ACL user without it): then the server's identity is simply not known.
      else runId = (await Promise.all([this.#write(), client.info('server').catch(() => '')]))[1].match(/^run_id:(\w+)/m)?.[1]
    } catch (err) {
      // The connection went away under the probe (its close may not even be emitted yet): the reconnect decides.
      if (NOT_SENT.test(messageOf(err)) && !this.#cluster) return this.#connectionLost()
      found = conditionOf(err)
      error = err
    }
    if (this.#closing !== undefined) return
    this.#apply(this.#availability.answer(ticket, found), error)
    if (runId !== undefined && this.#availability.condition === 'up') this.#noteServer(runId)
  }

  /**
   * Logs a Redis that is another server process than the one verified before
   * (its INFO `run_id` changed), outage or not: a restart that was over
   * within ioredis's 50 ms reconnect logs nothing else, and it kept only
   * what was persisted; a failover kept what was replicated.
   */
  #noteServer(runId: string): void {
    const before = this.#runId
    this.#runId = runId
    if (before === undefined || before === runId) return
    this.#log.warn(
      { redis: this.target, runId, previousRunId: before },
      'redis is another server process than before (a restart or a failover): keys it did not persist or replicate are gone (cached tokens are minted again, rate-limit windows start over, admin overrides return to the tenants file)',
    )
  }

  /**
   * ioredis ends a client for good (status `end`, no more reconnects) in one
   * case we know of: a Sentinel's +switch-master that arrives while the client
   * is asking the Sentinels where the primary is (its failover detector
   * disconnects the connector mid-resolve: "Connection is closed."). Seen in
   * the failover tests under load; an end we did not ask for is followed by a
   * new connect, as often as it takes.
   */
  #restart(): void {
    if (this.#closing !== undefined) return
    this.#observe('down')
    this.#log.warn({ redis: this.target }, 'redis client gave up reconnecting; connecting it again')
    setTimeout(() => {
      if (this.#closing === undefined && this.client.status === 'end') void this.client.connect().catch(() => undefined)
    }, this.#restartAfterMs).unref()
  }

  /**
   * The connection closed (or a probe found it closing). While available or
   * suspect that is only suspect (requests use local state at once), and the
   * reconnect decides: ready and verified (no outage), an error (logged
   * then), or neither within {@link RECONNECT_GRACE_MS} of the loss, or of
   * the first reconnect attempt's start if that began later (a stalled event
   * loop), logged then. Later attempts do not move that point (a proxy that
   * accepts and closes each one must not hide an outage). One more grace,
   * once, where the decision would be taken on a stale view: the client is
   * ready with its verify on the way, or the timer itself fired late while
   * an attempt was under way. Otherwise it is down.
   */
  #connectionLost(): void {
    if (this.#closing !== undefined) return
    const condition = this.#availability.condition
    if (condition !== 'up' && condition !== 'suspect') return this.#observe('down')
    this.#apply(this.#availability.suspect())
    if (this.#grace !== undefined) return
    // Any change of condition clears this timer (#apply): it always belongs to the current suspicion.
    const ticket = this.#availability.probe()
    this.#attemptAt = undefined
    let due = 0
    let extended = false
    const arm = (ms: number): void => {
      due = performance.now() + ms
      this.#grace = setTimeout(expire, ms).unref()
    }
    const expire = (): void => {
      this.#grace = undefined
      if (this.#closing !== undefined) return
      const status = this.client.status
      const now = performance.now()
      const attempting = status === 'connecting' || status === 'connect'
      // The first attempt since the loss, begun late (a stalled event loop), gets its whole grace; later attempts do not extend it.
      const left = (this.#attemptAt ?? -Infinity) + RECONNECT_GRACE_MS - now
      if (attempting && left > 0) return arm(left)
      // Ready again (the verify sent at 'ready' is on its way), or this timer came late (the process stood still, and
      // replies to the attempt may be waiting unread): one more grace, once.
      if (!extended && (status === 'ready' || (attempting && now - due > LATE_TIMER_MS))) return (extended = true), arm(RECONNECT_GRACE_MS)
      this.#apply(this.#availability.answer(ticket, 'down'))
    }
    arm(RECONNECT_GRACE_MS)
  }

  #scheduleProbe(): void {
    clearTimeout(this.#probe)
    if (this.#closing !== undefined || this.#availability.condition === 'up') return
    this.#probe = setTimeout(() => {
      if (this.#availability.condition === 'up' || this.#closing !== undefined) return
      // A probe only while connected: a reconnect ends in 'ready', which verifies by itself.
      if (this.client.status === 'ready') void this.#verify().then(() => this.#scheduleProbe())
      else this.#scheduleProbe()
    }, this.#probeAfterMs)
    this.#probe.unref()
  }

  #observe(found: Condition, err?: unknown): void {
    if (this.#closing !== undefined) return
    this.#apply(this.#availability.observe(found), err)
  }

  /** Acts on a change of availability: logged when it is lost (or never came) and when it returns, not at each step between. */
  #apply(change: Change | undefined, err?: unknown): void {
    if (err !== undefined && this.#availability.condition !== 'up') this.#reason = messageOf(err)
    if (change === undefined) return
    const { from, to } = change
    if (to !== 'suspect') {
      clearTimeout(this.#grace)
      this.#grace = undefined
      // Its waiters resume after this change is applied (a promise's continuation runs later).
      this.#decide()
    }
    const fields = { redis: this.target, ...(err !== undefined && { reason: messageOf(err) }) }
    if (to === 'up') {
      this.#reason = undefined
      clearTimeout(this.#probe)
      // A suspicion that the probe cleared was no outage: nothing to log, but local state was used meanwhile.
      if (from !== 'suspect') this.#log.info(fields, from === 'starting' ? 'redis connected' : 'redis available again; sharing state')
      if (from !== 'starting') for (const listener of this.#recover) listener()
      this.#settle()
      return
    }
    if (to === 'suspect') return
    this.#scheduleProbe()
    if (from !== 'up' && from !== 'suspect' && from !== 'starting') return
    this.#settle()
    if (to === 'slow') {
      this.#log.warn(fields, 'redis is not answering in time; using local state until it does')
    } else if (to === 'refusing') {
      this.#log.warn(fields, 'redis unavailable: it refuses writes (MISCONF or OOM); using local state until a write goes through')
    } else if (to === 'replica') {
      this.#log.warn(fields, 'redis unavailable: it refuses writes (a replica, READONLY); using local state until a primary is found')
    } else {
      this.#log.warn(fields, 'redis unavailable; using local state (cache, locks, limits) until it returns')
    }
  }
}
