import { createServer } from 'node:net'
import t from 'tap'
import { acme, API_KEY, buildBroker, userJwt } from '../helpers/broker.js'

const A1 = { allowed_creators: ['a1'] }
const A2 = { allowed_creators: ['a2'] }

t.test('upstream 500, 400, malformed and token-less answers are 502 UPSTREAM_ERROR', async (t) => {
  const b = await buildBroker(t)
  const jwt = await userJwt('u1')
  for (const mode of ['error500', 'error400', 'malformed', 'no-token'] as const) {
    b.sim.setFaults({ mode })
    const res = await b.token(jwt, A1)
    t.equal(res.status, 502, mode)
    t.equal(res.body.code, 'UPSTREAM_ERROR')
    t.notMatch(JSON.stringify(res.body), /oops|Internal error/, 'no upstream body verbatim')
  }
})

t.test('a hanging upstream is 503 UPSTREAM_UNAVAILABLE after the timeout', async (t) => {
  const b = await buildBroker(t, { upstreamTimeoutMs: 300 })
  b.sim.setFaults({ mode: 'hang' })
  const started = Date.now()
  const res = await b.token(await userJwt('u1'), A1)
  t.equal(res.status, 503)
  t.equal(res.body.code, 'UPSTREAM_UNAVAILABLE')
  t.ok(Number(res.headers['retry-after']) >= 1)
  t.ok(Date.now() - started < 2000, 'bounded by UPSTREAM_TIMEOUT_MS')
})

t.test('an unreachable upstream is 503, and five failures open the circuit', async (t) => {
  const closedPort = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
  const b = await buildBroker(t, {
    config: { upstream: { url: `http://127.0.0.1:${closedPort}`, apiKey: API_KEY, timeoutMs: 500 } },
  })
  const jwt = await userJwt('u1')
  for (let i = 0; i < 5; i++) {
    const res = await b.token(jwt, A1)
    t.equal(res.body.code, 'UPSTREAM_UNAVAILABLE')
    t.match(res.body.message, /unreachable/)
  }
  const open = await b.token(jwt, A1)
  t.equal(open.status, 503)
  t.match(open.body.message, /circuit is open/)
  t.ok(Number(open.headers['retry-after']) >= 1)
})

t.test('an observed Remaining: 0 stops upstream calls until the reset', async (t) => {
  const b = await buildBroker(t, { sim: { perMinute: 1 } })
  const jwt = await userJwt('u1')
  const first = await b.token(jwt, A1)
  t.equal(first.status, 200)
  t.equal(first.headers['x-ratelimit-remaining'], '0')
  const second = await b.token(jwt, A2)
  t.equal(second.status, 429)
  t.equal(second.body.code, 'UPSTREAM_RATE_LIMITED')
  t.equal(second.headers['x-ratelimit-remaining'], '0', 'upstream headers passed through')
  t.equal(second.headers['x-ratelimit-limit'], '1')
  const retry = Number(second.headers['retry-after'])
  t.ok(retry >= 1 && retry <= 61, `Retry-After ${retry} comes from the reset`)
  t.equal(b.sim.stats.requests, 1, 'the exhausted upstream was not called')

  const cached = await b.token(jwt, A1)
  t.equal(cached.status, 200, 'cache hits are still served while the upstream is exhausted')
  t.equal(cached.body.data.cached, true)
})

t.test('an upstream 429 blocks further calls and passes its headers through', async (t) => {
  const b = await buildBroker(t)
  const jwt = await userJwt('u1')
  t.equal((await b.token(jwt, A1)).status, 200)
  b.sim.setFaults({ mode: 'rate-limited' })
  const limited = await b.token(jwt, A2)
  t.equal(limited.status, 429)
  t.equal(limited.body.code, 'UPSTREAM_RATE_LIMITED')
  t.equal(limited.headers['x-ratelimit-remaining'], '0')
  t.ok(Number(limited.headers['retry-after']) > 1)
  const requests = b.sim.stats.requests
  b.sim.setFaults({ mode: 'ok' })
  const again = await b.token(jwt, { allowed_creators: ['a3'] })
  t.equal(again.body.code, 'UPSTREAM_RATE_LIMITED', 'still blocked although the upstream would answer')
  t.equal(b.sim.stats.requests, requests, 'no upstream call while known exhausted')
  t.equal((await b.token(jwt, A1)).status, 200, 'cached token still served')
})

t.test('cached tokens are served while the upstream is down', async (t) => {
  const b = await buildBroker(t)
  const jwt = await userJwt('u1')
  const first = await b.token(jwt, A1)
  b.sim.setFaults({ mode: 'error500' })
  const hit = await b.token(jwt, A1)
  t.equal(hit.status, 200)
  t.equal(hit.body.data.token, first.body.data.token)
})

const ADMIN_TOKEN = 'admin-token-for-tests-0123456789'

t.test("the tenant's upstreamMintsPerMinute share is enforced without calling the upstream", async (t) => {
  const b = await buildBroker(t, { tenants: [acme({ limits: { upstreamMintsPerMinute: 2 } })], config: { adminToken: ADMIN_TOKEN } })
  const jwt = await userJwt('u1')
  t.equal((await b.token(jwt, A1)).status, 200)
  t.equal((await b.token(jwt, A2)).status, 200)
  const over = await b.token(jwt, { allowed_creators: ['a3'] })
  t.equal(over.status, 429)
  t.equal(over.body.code, 'UPSTREAM_RATE_LIMITED')
  t.match(over.body.message, /share/)
  t.ok(Number(over.headers['retry-after']) >= 1)
  t.equal(b.sim.stats.requests, 2)
  t.equal((await b.token(jwt, A1)).body.data.cached, true, 'hits do not count against the share')
  t.equal((await b.token(jwt, { allowed_creators: ['a3'] })).status, 429, 'a second refusal')
  // The admin view counts calls made, as the share does: not the refused attempts.
  const admin = { authorization: `Bearer ${ADMIN_TOKEN}` }
  const usage = await b.app.inject({ method: 'GET', url: '/admin/tenants/acme/usage', headers: admin })
  t.match(usage.json().windows.upstreamMints, { count: 2, limit: 2 })
  // Raised within the window: the refused attempts took none of the raise (shares count calls made).
  const patched = await b.app.inject({ method: 'PATCH', url: '/admin/tenants/acme', headers: { ...admin, 'content-type': 'application/merge-patch+json' }, payload: { limits: { upstreamMintsPerMinute: 4 } } })
  t.equal(patched.statusCode, 200)
  t.equal((await b.token(jwt, { allowed_creators: ['a3'] })).status, 200, 'the third call')
  t.equal((await b.token(jwt, { allowed_creators: ['a1', 'a2'] })).status, 200, 'the fourth')
  t.equal((await b.token(jwt, { allowed_creators: ['a2', 'a3'] })).status, 429, 'the fifth is over the raised share')
  t.equal(b.sim.stats.requests, 4)
  const after = await b.app.inject({ method: 'GET', url: '/admin/tenants/acme/usage', headers: admin })
  t.match(after.json().windows.upstreamMints, { count: 4, limit: 4 })
})

t.test('metrics record mints by status, latency and the observed quota', async (t) => {
  const b = await buildBroker(t)
  await b.token(await userJwt('u1'), A1)
  const text = (await b.app.inject('/metrics')).body
  t.match(text, /tiktools_broker_upstream_mints_total\{tenant="acme",status="200"\} 1/)
  t.match(text, /tiktools_broker_upstream_mint_duration_seconds_count\{status="200"\} 1/)
  t.match(text, /tiktools_broker_upstream_quota_remaining 59/)
  t.match(text, /tiktools_broker_token_requests_total\{tenant="acme",outcome="ok"\} 1/)
  t.notMatch(text, /u1/, 'no subject in labels')
})
