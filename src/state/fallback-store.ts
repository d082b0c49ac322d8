import { ReplyError } from 'ioredis'
import { MemoryTokenStore } from '../cache/memory-store.js'
import type { CachedToken, Landed, MintFailure, MintLock, Purged, ReadAlongLookup, TokenKey, TokenStore } from '../cache/token-store.js'
import { BrokerError } from '../errors.js'
import { withFallback, type RedisHealth } from './health.js'

/** A failed release of a shared mint lock is tried again after this long, if Redis is available then. */
const RELEASE_RETRY_MS = 500

/**
 * Purge generations count apart in Redis and in each local store (a new one at
 * every recovery). One read from a local store is handed out as a negative
 * number that carries which local store it was: `-(1 + epoch * EPOCH_SPAN + g)`,
 * `g` that store's count (below 2^32), `epoch` how many recoveries came before
 * it; Redis's are never negative (an INCR count).
 */
const EPOCH_SPAN = 2 ** 32

/** A local store's count `g`, read in `epoch`, as the number handed out (see {@link EPOCH_SPAN}). */
const localGeneration = (epoch: number, g: number): number => -(1 + epoch * EPOCH_SPAN + g)

/** What {@link localGeneration} made, taken apart; undefined for Redis's own count. */
function readLocalGeneration(generation: number): { epoch: number; g: number } | undefined {
  if (generation >= 0) return undefined
  const n = -generation - 1
  const epoch = Math.floor(n / EPOCH_SPAN)
  return { epoch, g: n - epoch * EPOCH_SPAN }
}

/**
 * How long a mint's purge check waits for a suspicion of Redis (one failed
 * command, a dropped connection) to be decided before it settles for local
 * state (ms): a probe's answer or ioredis's reconnect usually takes a round
 * trip, and a mint thrown away costs an upstream call.
 */
const DECISION_WAIT_MS = 500

/**
 * The shared {@link TokenStore}, falling back to one in this process while
 * Redis is away: reads miss Redis but still find what this replica minted
 * meanwhile, writes and locks land locally, so the replica keeps caching and
 * coalescing its own requests. The local store is dropped when Redis returns:
 * it never saw purges made through other replicas.
 *
 * A mint's purge generation is checked only against the count it was read
 * from (README, "Revocation holds"): a token whose mint began on one side of a
 * change of store (Redis went away or came back, or a new local store) is
 * not kept (`set` answers false, so the token cache mints again), because the
 * purges made since on the other side cannot be known. One exception: read
 * locally, Redis back, and Redis holds no purge of the subject (its generation
 * is 0: a purge meanwhile would have moved it): kept in Redis.
 */
export class FallbackTokenStore implements TokenStore {
  readonly #shared: TokenStore
  readonly #health: RedisHealth
  #local = new MemoryTokenStore({ max: 10_000 })
  /** Recoveries so far: which local store a local generation was read from. */
  #epoch = 0
  /** Shared mint locks whose release did not reach Redis, with when each lapses by itself. */
  readonly #unreleased = new Map<MintLock, number>()
  #closing: Promise<void> | undefined

  constructor(shared: TokenStore, health: RedisHealth) {
    this.#shared = shared
    this.#health = health
    health.onRecover(() => {
      this.#local = new MemoryTokenStore({ max: 10_000 })
      this.#epoch += 1
      this.#releaseLeftovers()
    })
  }

  /** As {@link withFallback}, with no promise of its own around the shared store's (a Redis cache hit is the hot path). */
  get(key: TokenKey): CachedToken | undefined | Promise<CachedToken | undefined> {
    if (!this.#health.available) return this.#local.get(key)
    let shared: CachedToken | undefined | Promise<CachedToken | undefined>
    try {
      shared = this.#shared.get(key)
    } catch (err) {
      return this.#readLocally(err, key)
    }
    return this.#orLocally(shared, key)
  }

  /** The shared store's read-along while Redis is available; when the step did not read, {@link get} looks (Redis first while it is available). */
  readAlong(key: TokenKey): ReadAlongLookup | undefined {
    if (!this.#health.available) return undefined
    const along = this.#shared.readAlong?.(key)
    if (along === undefined) return undefined
    return {
      key: along.key,
      open: (read) => {
        // The count did not read (Redis refused the script, or it ran here): read as get does, Redis first while available.
        if (read === undefined) return this.get(key)
        return this.#orLocally(along.open(read), key)
      },
    }
  }

  /** A shared read's answer, or this process's when that read fails. */
  #orLocally(shared: CachedToken | undefined | Promise<CachedToken | undefined>, key: TokenKey): CachedToken | undefined | Promise<CachedToken | undefined> {
    return shared instanceof Promise ? shared.then(undefined, (err: unknown) => this.#readLocally(err, key)) : shared
  }

  #readLocally(err: unknown, key: TokenKey): CachedToken | undefined | Promise<CachedToken | undefined> {
    this.#health.noteFailure(err)
    return this.#local.get(key)
  }

  set(key: TokenKey, value: CachedToken, ttlMs: number, generation?: number): Promise<boolean> {
    // A key shared by grant has no subject to purge: kept wherever it lands.
    if (generation === undefined || key.subject === null) {
      return withFallback(
        this.#health,
        () => this.#shared.set(key, value, ttlMs),
        () => this.#local.set(key, value, ttlMs),
      )
    }
    const local = readLocalGeneration(generation)
    // Read from Redis: only Redis can say whether the subject was purged since.
    if (local === undefined) return this.#setChecked(key, value, ttlMs, generation)
    // Read from a local store while Redis was away, and Redis is back: its purges since the mint began are unknown,
    // unless it holds none for the subject at all (generation 0, checked in the same script as the write).
    if (this.#health.available) return this.#setChecked(key, value, ttlMs, 0)
    // Redis still away: checked against the local store it was read from; a later one's count is another count.
    if (local.epoch !== this.#epoch) return Promise.resolve(false)
    return this.#local.set(key, value, ttlMs, local.g)
  }

  /**
   * Redis's write with its generation check. When the write does not go
   * through (Redis away, suspect, or refusing the call), only Redis can still
   * say whether a purge came: once a suspicion is decided, the write (whose
   * script checks the generation) is tried once more. If Redis then refuses it
   * with an error reply, its count is read: unchanged, no purge came, and the
   * error is thrown (the token cache serves the token uncached). Anything
   * else — Redis away, the count moved, or no answer at all (a script that timed
   * out may have run and refused the token) — answers false: not kept, and the
   * token cache mints again.
   */
  async #setChecked(key: TokenKey, value: CachedToken, ttlMs: number, generation: number): Promise<boolean> {
    if (this.#health.available) {
      try {
        return await this.#shared.set(key, value, ttlMs, generation)
      } catch (err) {
        this.#health.noteFailure(err)
      }
    }
    if (!(await this.#availableSoon())) return false
    let refusal: unknown
    try {
      return await this.#shared.set(key, value, ttlMs, generation)
    } catch (err) {
      this.#health.noteFailure(err)
      // Only Redis's own answer says the script did not run; a timeout or a lost connection says nothing.
      if (!(err instanceof ReplyError)) return false
      refusal = err
    }
    let now: number | undefined
    try {
      now = await this.#shared.generation(key)
    } catch (err) {
      this.#health.noteFailure(err)
    }
    if (now !== generation) return false
    throw refusal
  }

  async delete(key: TokenKey, token: string): Promise<boolean> {
    const local = await this.#local.delete(key, token)
    const shared = await withFallback(this.#health, () => this.#shared.delete(key, token), async () => false)
    return local || shared
  }

  /** Redis's count while it answers; else this process's, as a negative number that names its local store (see {@link EPOCH_SPAN}). */
  async generation(key: TokenKey): Promise<number> {
    // A key shared by grant has no subject to purge: no generation, nothing to wait for.
    if (key.subject === null) return 0
    // A mint whose generation comes from Redis can be checked by Redis when it lands (see #setChecked): while Redis is
    // merely suspect, before or because of this read, wait a moment for the decision and ask once more.
    const attempts = this.#health.decided === undefined ? 1 : 2
    for (let attempt = 0; attempt < attempts && (await this.#availableSoon()); attempt++) {
      try {
        return await this.#shared.generation(key)
      } catch (err) {
        this.#health.noteFailure(err)
      }
    }
    const epoch = this.#epoch
    return localGeneration(epoch, await this.#local.generation(key))
  }

  /** Whether Redis is available, once a suspicion of it is decided (waiting at most {@link DECISION_WAIT_MS}). */
  async #availableSoon(): Promise<boolean> {
    if (!this.#health.available) await this.#health.decided?.(DECISION_WAIT_MS)
    return this.#health.available
  }

  setFailure(key: TokenKey, failure: MintFailure, ttlMs: number): Promise<void> {
    return withFallback(this.#health, () => this.#shared.setFailure(key, failure, ttlMs), () => this.#local.setFailure(key, failure, ttlMs))
  }

  landed(key: TokenKey): Promise<Landed | undefined> {
    return withFallback(this.#health, () => this.#shared.landed(key), () => this.#local.landed(key))
  }

  /** Purges both stores. Without Redis the shared tokens cannot be purged: a 503, never a silent success. */
  async purgeSubject(tenantId: string, subject: string): Promise<Purged> {
    const local = await this.#local.purgeSubject(tenantId, subject)
    const shared = await withFallback<Purged | undefined>(
      this.#health,
      () => this.#shared.purgeSubject(tenantId, subject),
      async () => undefined,
    )
    if (shared !== undefined) return { tokens: local.tokens + shared.tokens, minting: local.minting || shared.minting }
    throw new BrokerError('UPSTREAM_UNAVAILABLE', 'The shared token cache (Redis) is unavailable; the purge did not reach it. Retry.', {
      headers: { 'retry-after': 5 },
    })
  }

  acquireMintLock(key: TokenKey, ttlMs: number): Promise<MintLock | null> {
    return withFallback(
      this.#health,
      async () => {
        const lock = await this.#shared.acquireMintLock(key, ttlMs)
        return lock === null ? null : this.#releasedLater(lock, Date.now() + ttlMs)
      },
      () => this.#local.acquireMintLock(),
    )
  }

  /**
   * A shared lock whose release, if it cannot reach Redis, is sent again as
   * soon as Redis returns (or shortly, if it never went away). After a failover the new primary holds a copy of a
   * lock taken just before the old one died; left alone, every replica would
   * wait for it to lapse (the upstream timeout and more) before minting that key.
   */
  #releasedLater(lock: MintLock, lapsesAt: number): MintLock {
    return {
      release: async (failed) => {
        try {
          await lock.release(failed)
        } catch (err) {
          this.#health.noteFailure(err)
          if (lapsesAt > Date.now()) {
            this.#unreleased.set(lock, lapsesAt)
            // Redis may have stayed up (one failed call): then no recovery comes to send it again.
            setTimeout(() => this.#health.available && this.#releaseLeftovers(), RELEASE_RETRY_MS).unref()
          }
          throw err
        }
      },
    }
  }

  #releaseLeftovers(): void {
    const now = Date.now()
    for (const [lock, lapsesAt] of this.#unreleased) {
      this.#unreleased.delete(lock)
      if (lapsesAt > now) void this.#releasedLater(lock, lapsesAt).release().catch(() => undefined)
    }
  }

  waitForToken(key: TokenKey, timeoutMs: number): Promise<Landed | undefined> {
    return withFallback(this.#health, () => this.#shared.waitForToken(key, timeoutMs), () => this.#local.waitForToken(key))
  }

  /** Closes both stores once, however often it is called (the app and the state both close it). */
  close(): Promise<void> {
    this.#closing ??= Promise.allSettled([this.#shared.close(), this.#local.close()]).then(() => undefined)
    return this.#closing
  }
}
