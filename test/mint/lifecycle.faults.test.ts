import t from 'tap'
import type { Test } from 'tap'
import { describeToken } from '../../src/mint/token-time.js'
import { redisForTest, TEST_REDIS_URL } from '../helpers/redis.js'
import { fakeToken, startScriptedUpstream, tokenAnswer } from '../helpers/scripted-upstream.js'
import { fakeClock, mintBroker, type Clock } from './harness.js'

const NOW = 1_800_000_000_000

t.test('describeToken: the lifetime is the token’s, the clock is the broker’s', async (t) => {
  const at = NOW / 1000
  const behind = describeToken(fakeToken({ iat: at - 300, exp: at - 180 }), 600, NOW)
  t.same([behind.issuedAt, behind.expiresAt], [at, at + 120], 'an upstream clock 300 s behind')
  const ahead = describeToken(fakeToken({ iat: at + 300, exp: at + 420 }), 600, NOW)
  t.equal(ahead.expiresAt, at + 120, 'an upstream clock 300 s ahead')
  t.equal(describeToken(fakeToken({ iat: at, exp: at + 3600 }), 600, NOW).expiresAt, at + 600, 'never longer than expire_after')
  t.equal(describeToken(fakeToken({ exp: at + 90 }), 600, NOW).expiresAt, at + 90, 'no iat: its exp')
  t.equal(describeToken(fakeToken({ exp: at + 90 }), 600, NOW).issuedAt, null, 'no iat: no lifetime of its own')
  t.equal(describeToken('opaque-token', 600, NOW).expiresAt, at + 600, 'not a JWT: receive time + expire_after')
  for (const [name, claims] of [
    ['exp 1e999', { raw: '{"iat":1800000000,"exp":1e999}' }],
    ['exp a string', { iat: at, exp: String(at + 60) }],
    ['exp a fraction', { iat: at, exp: at + 60.5 }],
    ['iat after exp', { iat: at + 60, exp: at }],
    ['iat equal to exp', { iat: at, exp: at }],
    ['already expired, no iat', { exp: at - 1 }],
  ] as const) {
    t.throws(() => describeToken(fakeToken(claims as Record<string, unknown>), 600, NOW), { code: 'UPSTREAM_ERROR' }, name)
  }
})

const secs = (clock: Clock) => Math.floor(clock.now / 1000)

t.test('fault 7: an upstream clock 300 s behind or ahead changes neither expires_at nor caching', async (t) => {
  const clock = fakeClock()
  const up = await startScriptedUpstream(t)
  const broker = await mintBroker(t, up.url, { clock })
  let skew = -300
  up.autoAnswer(() => tokenAnswer(secs(clock) + skew, 120))
  const first = await broker.token('behind', { allowed_creators: ['a1'], expire_after: 120 })
  t.equal(first.body.data.expires_at, secs(clock) + 120)
  t.equal((await broker.token('behind', { allowed_creators: ['a1'], expire_after: 120 })).body.data.cached, true, 'cached, not minted anew')
  skew = 300
  const ahead = await broker.token('ahead', { allowed_creators: ['a1'], expire_after: 120 })
  t.equal(ahead.body.data.expires_at, secs(clock) + 120)
  clock.advance(61_000)
  const later = await broker.token('ahead', { allowed_creators: ['a1'], expire_after: 120 })
  t.equal(later.body.data.cached, false, 'past half its life it is minted anew, not served for 6 minutes')
  t.equal(up.calls, 3)
})

// CONTRACT: minRemaining is "never more than half its lifetime exp − iat, or expire_after where it has no iat".
t.test('without iat, minRemaining is capped by half of expire_after, not of the time the token has left', async (t) => {
  const clock = fakeClock()
  const up = await startScriptedUpstream(t)
  const broker = await mintBroker(t, up.url, { clock })
  // minRemaining 60 (the default), expire_after 600: the cap is 300, so 60 s holds.
  let left = 40
  up.autoAnswer(() => ({ body: { status_code: 0, data: { token: fakeToken({ exp: secs(clock) + left, sub: String(up.calls) }) } } }))
  t.equal((await broker.token('short', { allowed_creators: ['a1'], expire_after: 600 })).body.data.cached, false)
  t.equal((await broker.token('short', { allowed_creators: ['a1'], expire_after: 600 })).body.data.cached, false, 'a token with 40 s left is under 60 s: never served from cache')
  left = 100
  t.equal((await broker.token('long', { allowed_creators: ['a1'], expire_after: 600 })).body.data.cached, false)
  clock.advance(39_000)
  t.equal((await broker.token('long', { allowed_creators: ['a1'], expire_after: 600 })).body.data.cached, true, '61 s left: served')
  clock.advance(2_000)
  t.equal((await broker.token('long', { allowed_creators: ['a1'], expire_after: 600 })).body.data.cached, false, '59 s left: minted anew (half of its 100 s would have kept it to 50)')
})

t.test('fault 8: unusable exp/iat are an UPSTREAM_ERROR, never cached, and never poison the key', async (t) => {
  const clock = fakeClock()
  const up = await startScriptedUpstream(t)
  const broker = await mintBroker(t, up.url, { clock })
  up.autoAnswer(() => ({ body: { status_code: 0, data: { token: fakeToken({ raw: `{"iat":${secs(clock)},"exp":1e999}` }) } } }))
  const infinite = await broker.token('u1')
  t.equal(infinite.status, 502)
  t.equal(infinite.body.code, 'UPSTREAM_ERROR')
  clock.advance(1500)
  up.autoAnswer(() => ({ body: { status_code: 0, data: { token: fakeToken({ iat: secs(clock) + 600, exp: secs(clock) }) } } }))
  t.equal((await broker.token('u1')).body.code, 'UPSTREAM_ERROR', 'iat after exp')
  clock.advance(1500)
  up.autoAnswer(() => tokenAnswer(secs(clock), 600))
  const good = await broker.token('u1')
  t.equal(good.status, 200, 'the key mints again')
  t.equal(good.body.data.cached, false)
  t.equal((await broker.token('u1')).body.data.cached, true)
})

for (const mode of ['memory', 'redis'] as const) {
  const two = async (t: Test) => {
    const up = await startScriptedUpstream(t)
    const redis = mode === 'redis' ? { url: TEST_REDIS_URL, prefix: (await redisForTest(t)).prefix } : undefined
    const a = await mintBroker(t, up.url, redis !== undefined ? { redis } : {})
    const b = redis !== undefined ? await mintBroker(t, up.url, { redis }) : a
    return { up, a, b }
  }

  t.test(`${mode}: fault 9 — a purge during an in-flight mint: the pre-purge token is neither served nor cached`, async (t) => {
    const { up, a, b } = await two(t)
    const now = () => Math.floor(Date.now() / 1000)
    const inFlight = a.token('alice')
    const call = await up.next()
    t.equal(await a.purge('alice'), 204, 'a mint in flight is something to purge')
    call.answer(tokenAnswer(now(), 600))
    const second = await up.next()
    second.answer(tokenAnswer(now(), 600))
    const first = await inFlight
    t.equal(first.status, 200)
    t.equal(up.calls, 2, 'the token minted before the purge was discarded and minted again')
    const afterA = await a.token('alice')
    const afterB = await b.token('alice')
    t.equal(afterA.body.data.token, first.body.data.token, 'the post-purge token is the one cached')
    t.equal(afterB.body.data.token, first.body.data.token, 'on the other replica too')
    t.equal(afterB.body.data.cached, true)

    // And a purge made on the other replica, while this one mints.
    const racing = a.token('alice', { allowed_creators: ['a2'] })
    const raceCall = await up.next()
    t.equal(await b.purge('alice'), 204)
    const stale = tokenAnswer(now(), 600)
    raceCall.answer(stale)
    ;(await up.next()).answer(tokenAnswer(now(), 600))
    const raced = await racing
    t.not(raced.body.data.token, (stale.body as any).data.token, 'the token minted before the purge is never served')
    const again = await b.token('alice', { allowed_creators: ['a2'] })
    t.equal(again.body.data.token, raced.body.data.token)
    t.not(again.body.data.token, (stale.body as any).data.token)
  })

  t.test(`${mode}: a purge with nothing cached answers 204 while a mint for the subject is in flight on either replica, 404 otherwise`, async (t) => {
    const { up, a, b } = await two(t)
    const now = () => Math.floor(Date.now() / 1000)
    t.equal(await b.purge('alice'), 404, 'nothing cached, nothing in flight')
    const inFlight = a.token('alice')
    const call = await up.next()
    t.equal(await b.purge('alice'), 204, 'a mint in flight, on this replica or another, is something to purge')
    t.equal(await b.purge('bob'), 404, "another subject's mint is not")
    call.answer(tokenAnswer(now(), 600))
    ;(await up.next()).answer(tokenAnswer(now(), 600))
    t.equal((await inFlight).status, 200)
    t.equal(up.calls, 2, 'and it was revoked: minted again')
    t.equal(await b.purge('alice'), 204, 'the token minted after the purge is cached')
    t.equal(await b.purge('alice'), 404, 'and after the mint, nothing is left in flight')
  })

  t.test(`${mode}: fault 10 — rejected_token drops exactly that cached token and mints once`, async (t) => {
    const { up, a, b } = await two(t)
    const now = () => Math.floor(Date.now() / 1000)
    up.autoAnswer(() => tokenAnswer(now(), 600))
    const first = (await a.token('alice')).body.data.token
    const other = await b.token('alice', { allowed_creators: ['a1'], rejected_token: 'eyJ.not-the-cached-one.x' })
    t.equal(other.body.data.token, first, 'any other value changes nothing')
    t.equal(other.body.data.cached, true)
    const empty = await a.token('alice', { allowed_creators: ['a1'], rejected_token: '' })
    t.equal(empty.status, 200, 'an empty rejected_token is a string like any other (contract: "any other value changes nothing")')
    t.equal(empty.body.data.token, first)
    t.equal(empty.body.data.cached, true)
    t.equal(up.calls, 1)
    up.autoAnswer(undefined)
    const burst = Array.from({ length: 6 }, (_, i) => (i % 2 === 0 ? a : b).token('alice', { allowed_creators: ['a1'], rejected_token: first }))
    ;(await up.next()).answer(tokenAnswer(now(), 600))
    const answers = await Promise.all(burst)
    t.ok(answers.every((r) => r.status === 200 && r.body.data.token !== first), 'never the refused token')
    t.equal(new Set(answers.map((r) => r.body.data.token)).size, 1, 'one new token for all of them')
    t.equal(up.calls, 2, 'one mint for the whole burst')
    const hit = await a.token('alice')
    t.equal(hit.body.data.cached, true)
    t.not(hit.body.data.token, first)
  })

  t.test(`${mode}: an upstream that mints the refused token again is an UPSTREAM_ERROR, never that token`, async (t) => {
    const clock = fakeClock()
    const up = await startScriptedUpstream(t)
    const redis = mode === 'redis' ? { url: TEST_REDIS_URL, prefix: (await redisForTest(t)).prefix } : undefined
    const a = await mintBroker(t, up.url, { clock, ...(redis !== undefined && { redis }) })
    const b = redis !== undefined ? await mintBroker(t, up.url, { clock, redis }) : a
    const same = tokenAnswer(secs(clock), 600)
    up.autoAnswer(() => same)
    const first = (await a.token('alice')).body.data.token
    const again = await b.token('alice', { allowed_creators: ['a1'], rejected_token: first })
    t.equal(again.status, 502, 'byte for byte the token it refused: not an answer')
    t.equal(again.body.code, 'UPSTREAM_ERROR')
    t.equal(up.calls, 2)
    up.autoAnswer(() => tokenAnswer(secs(clock), 600))
    clock.advance(1500) // past the failure's 1 s for the burst
    const next = await a.token('alice')
    t.equal(next.status, 200)
    t.equal(next.body.data.cached, false, 'the refused token was not cached again')
    t.not(next.body.data.token, first)
  })
}

t.test('fault 11: three replicas on Redis, a failing upstream: one burst for one key is one failed call', async (t) => {
  const up = await startScriptedUpstream(t)
  const redis = { url: TEST_REDIS_URL, prefix: (await redisForTest(t)).prefix }
  const replicas = [await mintBroker(t, up.url, { redis }), await mintBroker(t, up.url, { redis }), await mintBroker(t, up.url, { redis })]
  const burst = Array.from({ length: 30 }, (_, i) => (replicas[i % 3] as (typeof replicas)[number]).token('alice'))
  const call = await up.next()
  // Every replica is waiting on the one lock by now; give the stragglers a moment to join.
  await new Promise((r) => setTimeout(r, 150))
  call.answer({ status: 500, body: { status_code: 500, message: 'Internal error' } })
  const answers = await Promise.all(burst)
  t.ok(answers.every((r) => r.status === 502 && r.body.code === 'UPSTREAM_ERROR'), 'everyone waiting gets the failure')
  t.equal(up.calls, 1, 'one upstream call for the burst, across three replicas')
})

// CONTRACT "200 response": X-RateLimit-* are the shared ledger's. On one Redis a hit's count reads the ledger's window
// along: a hit right after another replica's mint says what that mint saw (it said the replica's own last view, and
// so went back up for a client of both). The one-second read without it: test/upstream/quota-headers.test.ts.
t.test('redis: a cache hit right after another replica saw a lower Remaining, or a newer window, answers it', async (t) => {
  const up = await startScriptedUpstream(t)
  const redis = { url: TEST_REDIS_URL, prefix: (await redisForTest(t)).prefix }
  const a = await mintBroker(t, up.url, { redis })
  const b = await mintBroker(t, up.url, { redis })
  const now = () => Math.floor(Date.now() / 1000)
  const reset = now() + 3600
  up.autoAnswer(() => tokenAnswer(now(), 600, { limit: 60, remaining: 50, reset }))
  t.equal((await a.token('alice')).headers['x-ratelimit-remaining'], '50')
  t.equal((await a.token('alice')).headers['x-ratelimit-remaining'], '50', 'a hit: the window as Redis holds it')
  up.autoAnswer(() => tokenAnswer(now(), 600, { limit: 60, remaining: 7, reset }))
  t.equal((await b.token('bob')).headers['x-ratelimit-remaining'], '7')
  const hit = await a.token('alice')
  t.equal(hit.body.data.cached, true)
  t.equal(hit.headers['x-ratelimit-remaining'], '7', 'the lower Remaining another replica saw, at once')
  t.equal(hit.headers['x-ratelimit-reset'], String(reset))
  up.autoAnswer(() => tokenAnswer(now(), 600, { limit: 60, remaining: 59, reset: reset + 60 }))
  t.equal((await b.token('dave')).headers['x-ratelimit-reset'], String(reset + 60))
  const newer = await a.token('alice')
  t.same([newer.headers['x-ratelimit-remaining'], newer.headers['x-ratelimit-reset']], ['59', String(reset + 60)], 'and a newer window')
  t.equal(up.calls, 3)
})
