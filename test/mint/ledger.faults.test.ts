import t from 'tap'
import type { Test } from 'tap'
import { acme } from '../helpers/broker.js'
import { redisForTest, TEST_REDIS_URL } from '../helpers/redis.js'
import { quotaHeaders, startScriptedUpstream, tokenAnswer, type ScriptedUpstream } from '../helpers/scripted-upstream.js'
import { fakeClock, mintBroker, until, type Clock } from './harness.js'

/** Each fault of issue 8 that involves the ledger, on memory and on Redis. */
for (const mode of ['memory', 'redis'] as const) {
  const setup = async (t: Test, clock: Clock, tenants = [acme()]) => {
    const up = await startScriptedUpstream(t)
    const redis = mode === 'redis' ? { url: TEST_REDIS_URL, prefix: (await redisForTest(t)).prefix } : undefined
    const broker = await mintBroker(t, up.url, { clock, tenants, ...(redis !== undefined && { redis }) })
    /** A request whose tik.tools call is held until the test answers `call`. */
    const held = async (subject: string) => {
      const answer = broker.token(subject)
      return { answer, call: await up.next() }
    }
    return { up, broker, held }
  }
  const secs = (clock: Clock) => Math.floor(clock.now / 1000)

  t.test(`${mode}: fault 1 — a slow answer sent before a 429 does not lift the 60 s block`, async (t) => {
    const clock = fakeClock()
    const { up, broker, held } = await setup(t, clock)
    const slow = await held('u1')
    clock.advance(100)
    const limited = await held('u2')
    clock.advance(400)
    limited.call.answer({ status: 429, body: { status_code: 429, message: 'Rate limit exceeded' } })
    const refused = await limited.answer
    t.equal(refused.status, 429)
    t.equal(refused.body.code, 'UPSTREAM_RATE_LIMITED')
    t.equal(refused.headers['retry-after'], '60')
    clock.advance(1000)
    slow.call.answer(tokenAnswer(secs(clock), 600, { limit: 10, remaining: 8, reset: secs(clock) + 30 }))
    t.equal((await slow.answer).status, 200, 'the slow mint is served')
    clock.advance(500)
    const next = await broker.token('u3')
    t.equal(next.status, 429, '2 s after the 429: still blocked')
    t.ok(Number(next.headers['retry-after']) >= 58, `Retry-After ${next.headers['retry-after']}`)
    t.equal(up.calls, 2, 'tik.tools was not called')
    clock.advance(58_600)
    up.autoAnswer(() => tokenAnswer(secs(clock), 600, { limit: 10, remaining: 7, reset: secs(clock) + 30 }))
    t.equal((await broker.token('u4')).status, 200, 'time ends the block')
    t.equal(up.calls, 3)
  })

  t.test(`${mode}: fault 2 — answers out of order never raise Remaining, nor let a call through`, async (t) => {
    const clock = fakeClock()
    const { up, broker, held } = await setup(t, clock)
    const reset = secs(clock) + 60
    const first = await held('u1')
    clock.advance(50)
    const second = await held('u2')
    clock.advance(50)
    second.call.answer(tokenAnswer(secs(clock), 600, { limit: 10, remaining: 0, reset }))
    const b = await second.answer
    t.equal(b.headers['x-ratelimit-remaining'], '0')
    first.call.answer(tokenAnswer(secs(clock), 600, { limit: 10, remaining: 1, reset }))
    const a = await first.answer
    t.equal(a.status, 200)
    t.equal(a.headers['x-ratelimit-remaining'], '0', 'the later answer of an earlier request does not raise it')
    const third = await broker.token('u3')
    t.equal(third.status, 429)
    t.equal(third.headers['x-ratelimit-remaining'], '0')
    t.equal(up.calls, 2, 'no call that was certain to be refused')
    const hit = await broker.token('u1')
    t.equal(hit.body.data.cached, true)
    t.equal(hit.headers['x-ratelimit-remaining'], '0', 'a hit shows the same')
  })

  t.test(`${mode}: fault 3 — with Remaining 2, ten concurrent misses make two calls`, async (t) => {
    const clock = fakeClock()
    const { up, broker } = await setup(t, clock)
    const reset = secs(clock) + 60
    up.autoAnswer(() => tokenAnswer(secs(clock), 600, { limit: 10, remaining: 2, reset }))
    t.equal((await broker.token('u0')).status, 200)
    up.autoAnswer(undefined)
    const settled: Array<{ status: number; headers: Record<string, any>; body: any }> = []
    const burst = Array.from({ length: 10 }, (_, i) =>
      broker.token(`u${i + 1}`, { allowed_creators: [i % 2 === 0 ? 'a1' : 'a2'] }).then((r) => (settled.push(r), r)),
    )
    const calls = [await up.next(), await up.next()]
    await until(() => settled.length === 8, 5000, 'eight refusals')
    t.ok(settled.every((r) => r.status === 429 && r.body.code === 'UPSTREAM_RATE_LIMITED'), 'the other eight are refused at once')
    t.ok(settled.every((r) => r.headers['retry-after'] !== undefined))
    calls[0]?.answer(tokenAnswer(secs(clock), 600, { limit: 10, remaining: 1, reset }))
    calls[1]?.answer(tokenAnswer(secs(clock), 600, { limit: 10, remaining: 0, reset }))
    const all = await Promise.all(burst)
    t.equal(all.filter((r) => r.status === 200).length, 2, 'the two calls made are served')
    t.equal(up.calls, 3, 'two calls for ten misses')
    const usage = await broker.app.inject('/metrics')
    t.match(usage.body, /tiktools_broker_ledger_refusals_total\{reason="spent"\} 8/)
  })

  t.test(`${mode}: fault 5 — calls the circuit refused do not count against the tenant's share`, async (t) => {
    const clock = fakeClock()
    const { up, broker } = await setup(t, clock, [acme({ limits: { upstreamMintsPerMinute: 8 } })])
    up.autoAnswer(() => ({ status: 500, body: { status_code: 500, message: 'Internal error' } }))
    for (let i = 0; i < 5; i++) t.equal((await broker.token(`f${i}`)).body.code, 'UPSTREAM_ERROR')
    for (let i = 0; i < 3; i++) t.equal((await broker.token(`o${i}`)).body.code, 'UPSTREAM_UNAVAILABLE', 'the circuit is open')
    t.equal(up.calls, 5)
    clock.advance(10_001)
    up.autoAnswer(() => tokenAnswer(secs(clock), 600))
    for (let i = 0; i < 3; i++) t.equal((await broker.token(`ok${i}`)).status, 200, 'the share has three calls left')
    const over = await broker.token('over')
    t.equal(over.status, 429)
    t.match(over.body.message, /share/)
    t.equal(up.calls, 8, 'the share counted the eight calls made')
  })

  t.test(`${mode}: fault 6 — a Reset in milliseconds and an HTTP-date Retry-After are read as such`, async (t) => {
    const clock = fakeClock()
    const { up, broker } = await setup(t, clock)
    up.autoAnswer(() => tokenAnswer(secs(clock), 600, { limit: 10, remaining: 0, reset: String(clock.now + 30_000) }))
    t.equal((await broker.token('u1')).status, 200)
    const blocked = await broker.token('u2')
    t.equal(blocked.status, 429)
    t.ok(Number(blocked.headers['retry-after']) <= 31, `Retry-After ${blocked.headers['retry-after']} s, not millennia`)
    t.equal(blocked.headers['x-ratelimit-reset'], String(Math.ceil((clock.now + 30_000) / 1000)), 'passed on in unix seconds')
    clock.advance(31_000)
    up.autoAnswer(() => ({
      status: 429,
      headers: { 'retry-after': new Date(clock.now + 120_000).toUTCString() },
      body: { status_code: 429, message: 'Rate limit exceeded' },
    }))
    const limited = await broker.token('u3')
    t.equal(limited.status, 429)
    t.ok(Math.abs(Number(limited.headers['retry-after']) - 120) <= 1, `an HTTP-date is a date (${limited.headers['retry-after']} s)`)
    clock.advance(61_000)
    t.equal((await broker.token('u4')).status, 429, 'still blocked after 61 s')
    t.equal(up.calls, 2)
  })

  t.test(`${mode}: fault 6b — Remaining 0 with a Reset that is no time blocks for 60 s, as a 429 that says neither`, async (t) => {
    const clock = fakeClock()
    const { up, broker } = await setup(t, clock)
    up.autoAnswer(() => tokenAnswer(secs(clock), 600, { limit: 10, remaining: 0, reset: 'abc' }))
    const served = await broker.token('u1')
    t.equal(served.status, 200)
    t.equal(served.headers['x-ratelimit-remaining'], '0')
    t.equal(served.headers['x-ratelimit-reset'], String(Math.ceil(clock.now / 1000) + 60), 'the block passed on as its window (whole seconds, rounded up)')
    const blocked = await broker.token('u2')
    t.equal(blocked.status, 429)
    t.equal(blocked.body.code, 'UPSTREAM_RATE_LIMITED')
    t.ok(Number(blocked.headers['retry-after']) >= 60 && Number(blocked.headers['retry-after']) <= 61, `Retry-After ${blocked.headers['retry-after']}`)
    t.equal(up.calls, 1, 'tik.tools was not called again')
    clock.advance(59_000)
    t.equal((await broker.token('u2b')).status, 429, 'still blocked after 59 s')
    clock.advance(2_000)
    up.autoAnswer(() => tokenAnswer(secs(clock), 600, { limit: 10, remaining: 9, reset: secs(clock) + 60 }))
    t.equal((await broker.token('u3')).status, 200, 'time ends the block')
    t.equal(up.calls, 2)
  })
}

/**
 * Replica `a` (and, with `withB`, a replica `b` started beside it) on a Redis of their own; `a` mints once (5 left),
 * then sees a 429 while Redis is paused; Redis answers again and `a` is ready once more.
 */
async function blockSeenInOutage(t: Test, prefix: string, withB: boolean) {
  const { startRedisServer } = await import('../helpers/redis.js')
  const server = await startRedisServer(t)
  const up: ScriptedUpstream = await startScriptedUpstream(t)
  const { Redis } = await import('ioredis')
  const admin = new Redis(server.url)
  t.teardown(() => admin.quit())
  const replica = () => mintBroker(t, up.url, { redis: { url: server.url, prefix } })
  const a = await replica()
  const b = withB ? await replica() : undefined
  const now = () => Math.floor(Date.now() / 1000)
  up.autoAnswer(() => tokenAnswer(now(), 600, { limit: 10, remaining: 5, reset: now() + 300 }))
  t.equal((await a.token('u1')).status, 200, 'the shared state knows 5 left')
  await admin.client('PAUSE', 2500, 'ALL')
  up.autoAnswer(() => ({ status: 429, body: { status_code: 429, message: 'Rate limit exceeded' } }))
  t.equal((await a.token('u2')).body.code, 'UPSTREAM_RATE_LIMITED', 'the 429 is seen while Redis does not answer')
  await admin.client('UNPAUSE')
  await until(async () => (await a.app.inject('/readyz')).statusCode === 200, 10_000, 'redis back')
  return { up, admin, a, b, replica }
}

t.test('fault 4 — a 429 seen while Redis is paused still holds once Redis answers again', async (t) => {
  const { up, a, replica } = await blockSeenInOutage(t, 'tkb:f4:', false)
  t.equal((await a.token('u3')).status, 429, 'the local block holds after Redis returns')
  t.equal(up.calls, 2)
  const other = await (await replica()).token('u4')
  t.equal(other.status, 429, 'and reached Redis: a replica that never saw it is blocked too')
  t.equal(up.calls, 2, 'tik.tools was not called again')
})

// The same, but the replica that never saw the 429 is the first to call once Redis answers again: the block must already be
// in Redis (pushed when the replica that saw it found Redis back), not wait for that replica's next call.
t.test('fault 4b — a 429 seen while Redis is paused stops another replica that calls first once Redis is back', async (t) => {
  const prefix = 'tkb:f4b:'
  const { up, admin, b } = await blockSeenInOutage(t, prefix, true)
  // Its push is one round trip: the block is in Redis once the shared ledger's hash says so (read straight from Redis).
  const blockedUntil = async (): Promise<number> => {
    const [hash] = (await admin.keys(`${prefix}{quota:*}`)).filter((k) => !k.endsWith(':flight'))
    return hash === undefined ? 0 : Number(await admin.hget(hash, 'blockedUntil'))
  }
  await until(async () => (await blockedUntil()) > Date.now(), 5000, 'the block in Redis')
  const first = await (b as NonNullable<typeof b>).token('u3')
  t.equal(first.status, 429, 'the replica that never saw the 429 is blocked, calling first')
  t.equal(first.body.code, 'UPSTREAM_RATE_LIMITED')
  t.equal(up.calls, 2, 'tik.tools was not called again')
})
