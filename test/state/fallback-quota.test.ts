import t from 'tap'
import { ReplyError } from 'ioredis'
import { pino } from 'pino'
import { MemoryTokenStore } from '../../src/cache/memory-store.js'
import { TokenCache } from '../../src/cache/token-cache.js'
import type { CachedToken } from '../../src/cache/token-store.js'
import { tenantSchema } from '../../src/config/tenant-schema.js'
import { FallbackTokenStore } from '../../src/state/fallback-store.js'
import type { RedisHealth } from '../../src/state/health.js'

// The purge check across Redis faults must not cost upstream calls the README does not admit: a single slow answer, or
// a write Redis refuses with an error reply that is no outage (MISCONF and OOM are outages since; any other refusal),
// while no purge came. (Cases from a review of 4b594b8: each cost 2-3 mints, or a 503, before the fix.)

/**
 * A health with RedisConnection's rules: a timeout makes Redis suspect (unavailable) and sends a probe at once, which
 * answers a round trip later (here 5 ms) and runs the recovery listeners; any other error ("answering, but refusing
 * this call") leaves it available. `decided` resolves when the probe answers, or after its bound.
 */
class ConnectionLikeHealth implements RedisHealth {
  available = true
  /** When set, the probe does not go through: Redis is really gone. */
  down = false
  /** How long the probe takes to answer (ms). */
  constructor(readonly probeMs = 5) {}
  readonly #listeners: Array<() => void> = []
  readonly #waiting = new Set<() => void>()
  noteFailure(err: unknown): void {
    if (!this.available || !/timed out/.test((err as Error).message)) return
    this.available = false
    setTimeout(() => {
      if (!this.down) {
        this.available = true
        for (const l of this.#listeners) l()
      }
      for (const w of [...this.#waiting]) w()
    }, this.probeMs)
  }
  onRecover(l: () => void): void {
    this.#listeners.push(l)
  }
  decided(maxMs: number): Promise<void> {
    if (this.available) return Promise.resolve()
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.#waiting.delete(done)
        resolve()
      }
      const timer = setTimeout(done, maxMs)
      this.#waiting.add(done)
    })
  }
}

/** "Redis": a memory store whose chosen calls fail with `message` the next `n` times. */
function redisLike(faults: Partial<Record<'set' | 'generation', { message: string; n: number }>>): MemoryTokenStore {
  const redis = new MemoryTokenStore()
  for (const m of ['set', 'generation'] as const) {
    const real = redis[m].bind(redis) as (...a: unknown[]) => Promise<unknown>
    ;(redis as unknown as Record<string, unknown>)[m] = async (...a: unknown[]) => {
      const f = faults[m]
      if (f !== undefined && f.n > 0) {
        f.n--
        // Redis's own error replies are ReplyErrors; a timeout is the broker's own Error.
        throw /^[A-Z]+ /.test(f.message) && !f.message.startsWith('Command') ? new ReplyError(f.message) : new Error(f.message)
      }
      return real(...a)
    }
  }
  return redis
}

const tenant = { id: 'acme', ...tenantSchema.parse({ auth: { apiKeys: [`sha256:${'0'.repeat(64)}`] } }) }
const grant = { tenantId: 'acme', subject: 'alice', creators: ['a1'], maxWebsockets: 1, expireAfter: 600 }
/** An error reply to a write that the connection does not take for an outage. */
const REFUSED = 'ERR Error running script: the write was refused'
const TIMEOUT = 'Command timed out'

function cacheOn(store: FallbackTokenStore, duringMint: () => void | Promise<void> = () => {}): { cache: TokenCache; mints: () => number } {
  let mints = 0
  const minter = {
    mint: async () => {
      mints++
      await new Promise((r) => setTimeout(r, 20)) // the upstream round trip
      await duringMint()
      const token: CachedToken = { token: `t${mints}`, expiresAt: Math.floor(Date.now() / 1000) + 600, issuedAt: null, expireAfter: 600 }
      return { token, upstreamMs: 20 }
    },
  }
  const cache = new TokenCache({ store, minter: minter as never, log: pino({ level: 'silent' }), upstreamTimeoutMs: 1000 })
  return { cache, mints: () => mints }
}

t.test('a write refused without an outage, no purge: one mint, the token served (uncached)', async (t) => {
  const health = new ConnectionLikeHealth()
  const redis = redisLike({ set: { message: REFUSED, n: Infinity } })
  const { cache, mints } = cacheOn(new FallbackTokenStore(redis, health))
  t.equal((await cache.tokenFor(tenant, grant)).token.token, 't1')
  t.equal(mints(), 1)
})

t.test('a write refused without an outage, and a purge came during the mint: that token is not served', async (t) => {
  const health = new ConnectionLikeHealth()
  const redis = redisLike({ set: { message: REFUSED, n: Infinity } })
  const { cache, mints } = cacheOn(new FallbackTokenStore(redis, health), async () => {
    if (mints() === 1) await redis.purgeSubject('acme', 'alice')
  })
  t.equal((await cache.tokenFor(tenant, grant)).token.token, 't2', 'the one minted after the purge')
  t.equal(mints(), 2)
})

for (const purgedBefore of [false, true]) {
  const subject = purgedBefore ? 'a subject purged earlier (Redis generation 1)' : 'a subject never purged'
  for (const [call, what] of [
    ['generation', 'the generation read'],
    ['set', "the token's write (made again)"],
  ] as const) {
    t.test(`one timeout on ${what}, ${subject}: one mint, cached in Redis`, async (t) => {
      const health = new ConnectionLikeHealth()
      const redis = redisLike({ [call]: { message: TIMEOUT, n: 1 } })
      if (purgedBefore) await redis.purgeSubject('acme', 'alice')
      const { cache, mints } = cacheOn(new FallbackTokenStore(redis, health))
      t.equal((await cache.tokenFor(tenant, grant)).token.token, 't1')
      t.equal(mints(), 1)
      t.equal((await redis.get(cache.keyFor(tenant, grant)))?.token, 't1', 'cached in Redis')
    })
  }
}

t.test('Redis really gone when the token lands (the probe fails): not kept, minted again locally, as the README says', async (t) => {
  const health = new ConnectionLikeHealth()
  const redis = redisLike({})
  const store = new FallbackTokenStore(redis, health)
  const { cache, mints } = cacheOn(store, () => {
    if (mints() === 1) {
      health.down = true
      health.noteFailure(new Error(TIMEOUT))
    }
  })
  t.equal((await cache.tokenFor(tenant, grant)).token.token, 't2')
  t.equal(mints(), 2, 'one extra upstream call: Redis could not say whether a purge came')
})

// From a second review: a write whose answer never came may have run, and Redis's own script may have refused the token.
t.test('the retried write times out after a purge reached Redis: Redis may have refused it, so the token is not served', async (t) => {
  const health = new ConnectionLikeHealth()
  const redis = new MemoryTokenStore()
  const realSet = redis.set.bind(redis)
  let sets = 0
  redis.set = async (key, value, ttlMs, generation) => {
    sets++
    if (sets === 1) throw new Error(TIMEOUT) // a slow Redis: the first write's answer came too late
    if (sets === 2) {
      // A purge on another replica lands between the decision and the retry; the retry's script refuses the token (its
      // generation moved), and that answer is late again.
      await redis.purgeSubject('acme', 'alice')
      t.equal(await realSet(key, value, ttlMs, generation), false, 'Redis itself refused the pre-purge token')
      throw new Error(TIMEOUT)
    }
    return realSet(key, value, ttlMs, generation)
  }
  const { cache } = cacheOn(new FallbackTokenStore(redis, health))
  t.not((await cache.tokenFor(tenant, grant)).token.token, 't1', 'the token minted before the purge is not served')
})

t.test('a key shared by grant has no generation: nothing to wait for while Redis is suspect', async (t) => {
  const health = new ConnectionLikeHealth(300) // a suspicion that takes a while to decide (a dropped connection's grace)
  const store = new FallbackTokenStore(new MemoryTokenStore(), health)
  health.noteFailure(new Error(TIMEOUT))
  const started = performance.now()
  t.equal(await store.generation({ tenantId: 'acme', subject: null, grant: 'g' }), 0)
  t.ok(performance.now() - started < 50, 'at once')
})
