import t from 'tap'
import { decodeProtectedHeader } from 'jose'
import { SimulatorTokenError, verifySimulatorToken } from '../../src/simulator/index.js'
import { T0, call, fakeClock, mint, startSim } from './fixtures/simulator.js'

t.test('applies the defaults and puts them in the token', async (t) => {
  const clock = fakeClock()
  const sim = await startSim(t, { now: clock.now })
  const res = await mint(sim, 'any-key', {})
  t.equal(res.status, 200)
  t.equal(res.json.status_code, 0)
  const token = res.json.data.token as string
  t.match(token, /^eyJ/)
  t.same(decodeProtectedHeader(token), { alg: 'HS256', typ: 'JWT' })
  const claims = await verifySimulatorToken(token, sim.secret, clock.now())
  t.equal(claims.iat, T0 / 1000)
  t.equal(claims.exp, T0 / 1000 + 3600, 'expire_after defaults to 3600')
  t.equal(claims.max_websockets, 1, 'max_websockets defaults to 1')
  t.type(claims.jti, 'string')
  t.notOk('allowed_creators' in claims, 'no creator claim when none was asked for')
})

t.test('a request without any body gets the defaults too', async (t) => {
  const sim = await startSim(t)
  const res = await mint(sim, 'any-key')
  t.equal(res.status, 200)
  const claims = await verifySimulatorToken(res.json.data.token, sim.secret)
  t.equal(claims.exp - claims.iat, 3600)
})

t.test('puts the asked-for grant in the token, creators normalised', async (t) => {
  const sim = await startSim(t)
  const res = await mint(sim, 'any-key', {
    expire_after: 600,
    max_websockets: 3,
    allowed_creators: ['@Streamer1', 'streamer2', 'STREAMER1'],
  })
  t.equal(res.status, 200)
  const claims = await verifySimulatorToken(res.json.data.token, sim.secret)
  t.equal(claims.exp - claims.iat, 600)
  t.equal(claims.max_websockets, 3)
  t.same(claims.allowed_creators, ['streamer1', 'streamer2'])
})

t.test('every token has its own jti', async (t) => {
  const sim = await startSim(t)
  const [a, b] = await Promise.all([mint(sim, 'k', {}), mint(sim, 'k', {})])
  const [ca, cb] = await Promise.all([
    verifySimulatorToken(a?.json.data.token, sim.secret),
    verifySimulatorToken(b?.json.data.token, sim.secret),
  ])
  t.not(ca.jti, cb.jti)
})

t.test('apiKey checks', async (t) => {
  t.test('with a key list, only listed keys are accepted', async (t) => {
    const sim = await startSim(t, { apiKeys: ['good-key'] })
    for (const key of [undefined, 'bad-key', '']) {
      const res = await mint(sim, key, {})
      t.equal(res.status, 401, `key ${String(key)}`)
      t.same(res.json, { status_code: 401, message: 'Invalid API key' })
      // Every tik.tools answer carries X-RateLimit-* (CONTRACT section 1): a full window, never counted.
      t.equal(res.headers['x-ratelimit-limit'], res.headers['x-ratelimit-remaining'], 'an unknown key: a full window')
      t.match(res.headers['x-ratelimit-reset'], /^\d+$/)
    }
    t.equal((await mint(sim, 'good-key', {})).status, 200)
  })

  t.test('without a key list, any non-empty key is accepted', async (t) => {
    const sim = await startSim(t)
    t.equal((await mint(sim, 'whatever', {})).status, 200)
    t.equal((await mint(sim, '', {})).status, 401)
    t.equal((await mint(sim, undefined, {})).status, 401)
  })
})

t.test('invalid bodies answer 400 with quota headers and do not mint', async (t) => {
  const sim = await startSim(t, { perMinute: 100 })
  const bad: Array<[string, unknown]> = [
    ['not JSON', '{"expire_after":'],
    ['an array', '[]'],
    ['null', 'null'],
    ['expire_after a string', { expire_after: '600' }],
    ['expire_after zero', { expire_after: 0 }],
    ['expire_after negative', { expire_after: -5 }],
    ['expire_after fractional', { expire_after: 1.5 }],
    ['max_websockets zero', { max_websockets: 0 }],
    ['max_websockets a string', { max_websockets: '2' }],
    ['allowed_creators a string', { allowed_creators: 'streamer1' }],
    ['allowed_creators empty', { allowed_creators: [] }],
    ['allowed_creators with a number', { allowed_creators: ['a', 1] }],
    ['allowed_creators with a blank name', { allowed_creators: ['@'] }],
  ]
  for (const [why, body] of bad) {
    const res = await mint(sim, 'k', body)
    t.equal(res.status, 400, why)
    t.equal(res.json?.status_code, 400, why)
    t.type(res.json?.message, 'string', why)
    t.equal(res.headers['x-ratelimit-limit'], '100', `${why}: limit header`)
    t.equal(res.headers['x-ratelimit-remaining'], '100', `${why}: not counted`)
    t.ok(res.headers['x-ratelimit-reset'], `${why}: reset header`)
  }
  t.equal(sim.stats.mints, 0)
  t.equal(sim.stats.failures, bad.length)
  t.equal(sim.stats.requests, bad.length)
})

t.test('records the parsed bodies of the last 100 mint requests, oldest first', async (t) => {
  const sim = await startSim(t, { perMinute: 1000 })
  for (let i = 0; i < 105; i++) await mint(sim, 'k', { expire_after: 60 + i })
  t.equal(sim.lastBodies.length, 100)
  t.same(sim.lastBodies[0], { expire_after: 65 })
  t.same(sim.lastBodies[99], { expire_after: 164 })
  sim.resetStats()
  t.equal(sim.lastBodies.length, 0, 'resetStats forgets them')
})

t.test('healthz and unknown routes', async (t) => {
  const sim = await startSim(t)
  t.equal((await call(sim, 'GET', '/healthz')).status, 200)
  const missing = await call(sim, 'GET', '/nope')
  t.equal(missing.status, 404)
  t.same(missing.json, { status_code: 404, message: 'Not found' })
})

t.test('verifySimulatorToken', async (t) => {
  const clock = fakeClock()
  const sim = await startSim(t, { now: clock.now })
  const res = await mint(sim, 'k', { expire_after: 60 })
  const token = res.json.data.token as string

  const reasonOf = (p: Promise<unknown>): Promise<string> =>
    p.then(
      () => 'accepted',
      (err: unknown) => (err instanceof SimulatorTokenError ? err.reason : `unexpected ${String(err)}`),
    )
  t.equal(await reasonOf(verifySimulatorToken(token, 'another-secret', clock.now())), 'invalid')
  t.equal(await reasonOf(verifySimulatorToken('not.a.jwt', sim.secret, clock.now())), 'invalid')
  t.equal(await reasonOf(verifySimulatorToken(token, sim.secret, T0 + 60_000)), 'expired')
  t.equal((await verifySimulatorToken(token, sim.secret, T0 + 59_999)).max_websockets, 1)
})
