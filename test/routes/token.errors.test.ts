import t, { type Test } from 'tap'
import { ERRORS } from '../../src/errors.js'
import { acme, buildBroker, userJwt } from '../helpers/broker.js'
import type { TokenAnswer } from '../helpers/broker.js'

/** Every error answer has the contract's body and JSON content type. */
function assertError(t: Test, res: TokenAnswer, code: keyof typeof ERRORS): void {
  t.equal(res.status, ERRORS[code].status, `${code} status`)
  t.match(res.headers['content-type'], /^application\/json/)
  t.same(Object.keys(res.body).sort(), ['code', 'message', 'status_code'])
  t.equal(res.body.code, code)
  t.equal(res.body.status_code, ERRORS[code].status)
  t.type(res.body.message, 'string')
  t.notMatch(JSON.stringify(res.body), /at .*\.ts|node_modules|stack/i, 'no stack in the body')
}

t.test('BAD_REQUEST for malformed JSON, wrong types, bad names, unknown fields and lifetimes below 30 s', async (t) => {
  const b = await buildBroker(t)
  const jwt = await userJwt('u1')
  const cases: Array<[unknown, RegExp]> = [
    ['{"allowed_creators": [', /JSON/],
    ['[1,2]', /object/],
    ['null', /object/],
    [{ allowed_creators: 'a1' }, /allowed_creators/],
    [{ allowed_creators: [] }, /allowed_creators/],
    [{ allowed_creators: ['a'] }, /allowed_creators\.0/],
    [{ allowed_creators: ['bad name!'] }, /allowed_creators\.0/],
    [{ allowed_creators: Array.from({ length: 51 }, (_, i) => `c${i}x`) }, /allowed_creators/],
    [{ expire_after: 29 }, /expire_after/],
    [{ expire_after: 60.5 }, /expire_after/],
    [{ max_websockets: 0 }, /max_websockets/],
    [{ max_websockets: '2' }, /max_websockets/],
    [{ extra: true }, /unknown field extra/],
    [{ subject: 'someone' }, /subject/],
  ]
  for (const [body, message] of cases) {
    const res = await b.token(jwt, body)
    assertError(t, res, 'BAD_REQUEST')
    t.match(res.body.message, message, JSON.stringify(body).slice(0, 60))
  }
  t.equal(b.sim.stats.requests, 0, 'no bad request reached the upstream')
})

t.test('CREATORS_REQUIRED when the tenant allows any creator but no unrestricted token', async (t) => {
  const b = await buildBroker(t, { tenants: [acme({ creators: { allowed: '*' } })] })
  assertError(t, await b.token(await userJwt('u1')), 'CREATORS_REQUIRED')
})

t.test('UNAUTHENTICATED with an RFC 6750 challenge', async (t) => {
  const b = await buildBroker(t)
  const none = await b.token(undefined, {})
  assertError(t, none, 'UNAUTHENTICATED')
  t.equal(none.headers['www-authenticate'], 'Bearer realm="tiktools-broker"', 'no error code without a credential')
  const bad = await b.token('not-a-jwt', {})
  assertError(t, bad, 'UNAUTHENTICATED')
  t.match(bad.headers['www-authenticate'], /^Bearer .*error="invalid_token"/)
  const basic = await b.app.inject({ method: 'POST', url: '/v1/token', headers: { authorization: 'Basic dXNlcjpwYXNz' } })
  t.equal(basic.statusCode, 401)
  t.match(basic.headers['www-authenticate'], /error="invalid_token"/)
})

t.test('CREATOR_NOT_ALLOWED for a creator outside the tenant list', async (t) => {
  const b = await buildBroker(t)
  const res = await b.token(await userJwt('u1'), { allowed_creators: ['a1', 'zz9'] })
  assertError(t, res, 'CREATOR_NOT_ALLOWED')
  t.match(res.body.message, /zz9/)
})

t.test("ORIGIN_NOT_ALLOWED for an Origin outside the tenant's list", async (t) => {
  const b = await buildBroker(t)
  const jwt = await userJwt('u1')
  assertError(t, await b.token(jwt, {}, { origin: 'https://evil.example' }), 'ORIGIN_NOT_ALLOWED')
  const ok = await b.token(jwt, {}, { origin: 'https://app.acme.example' })
  t.equal(ok.status, 200)
  t.equal(ok.headers['access-control-allow-origin'], 'https://app.acme.example')
  t.match(ok.headers['access-control-expose-headers'], /X-RateLimit-Remaining.*RateLimit-Remaining.*Retry-After/)
})

t.test('TENANT_DISABLED when ops switched the tenant off', async (t) => {
  const b = await buildBroker(t, { tenants: [acme({ enabled: false })] })
  assertError(t, await b.token(await userJwt('u1'), {}), 'TENANT_DISABLED')
})

t.test('NOT_FOUND for an unknown route', async (t) => {
  const b = await buildBroker(t)
  const res = await b.app.inject({ method: 'GET', url: '/v2/nothing?x=1' })
  assertError(t, { status: res.statusCode, headers: res.headers, body: res.json() }, 'NOT_FOUND')
  const wrongMethod = await b.app.inject({ method: 'GET', url: '/v1/token' })
  t.equal(wrongMethod.statusCode, 404)
})

t.test('PAYLOAD_TOO_LARGE for a body over 16 KiB', async (t) => {
  const b = await buildBroker(t)
  const res = await b.token(await userJwt('u1'), JSON.stringify({ subject: 'x'.repeat(17 * 1024) }))
  assertError(t, res, 'PAYLOAD_TOO_LARGE')
})

t.test('UNSUPPORTED_MEDIA_TYPE for a body that is not JSON', async (t) => {
  const b = await buildBroker(t)
  const jwt = await userJwt('u1')
  for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
    const res = await b.app.inject({
      method: 'POST',
      url: '/v1/token',
      headers: { authorization: `Bearer ${jwt}`, 'content-type': type },
      payload: 'a=b',
    })
    assertError(t, { status: res.statusCode, headers: res.headers, body: res.json() }, 'UNSUPPORTED_MEDIA_TYPE')
  }
  // No body at all is `{}` whatever the type says (contract: "no body at all means {}"): served, not a 415.
  for (const type of ['text/plain', 'application/x-www-form-urlencoded']) {
    const empty = await b.app.inject({ method: 'POST', url: '/v1/token', headers: { authorization: `Bearer ${jwt}`, 'content-type': type, 'content-length': '0' } })
    t.equal(empty.statusCode, 200, `${type} without a body`)
    t.same(empty.json().data.allowed_creators, ['a1', 'a2', 'a3'], 'the whole allowed list, as for {}')
  }
  // Not JSON, whatever the text looks like: a type without the +json suffix, or a suffix that is not at the end.
  for (const type of ['application/jsonx', 'application/json+xml', 'text/json+plain', 'application/vnd.api+jsonp']) {
    const res = await b.app.inject({ method: 'POST', url: '/v1/token', headers: { authorization: `Bearer ${jwt}`, 'content-type': type }, payload: '{}' })
    t.equal(res.statusCode, 415, type)
  }
})

t.test('JSON by its structured syntax suffix (RFC 6839) is JSON: application/vnd.api+json and parameters', async (t) => {
  const b = await buildBroker(t)
  const jwt = await userJwt('u1')
  for (const type of ['application/vnd.api+json', 'application/problem+json; charset=utf-8', 'APPLICATION/JSON', 'application/json; charset=utf-8']) {
    const res = await b.app.inject({ method: 'POST', url: '/v1/token', headers: { authorization: `Bearer ${jwt}`, 'content-type': type }, payload: '{"allowed_creators":["a1"]}' })
    t.equal(res.statusCode, 200, type)
    t.same(res.json().data.allowed_creators, ['a1'], `${type}: the body was read`)
    const bad = await b.app.inject({ method: 'POST', url: '/v1/token', headers: { authorization: `Bearer ${jwt}`, 'content-type': type }, payload: '{"allowed_creators":' })
    t.equal(bad.statusCode, 400, `${type}: malformed JSON is a 400 like any JSON`)
  }
})

t.test('RATE_LIMITED per subject and per tenant, with Retry-After', async (t) => {
  const b = await buildBroker(t, { tenants: [acme({ limits: { perSubjectPerMinute: 2, perTenantPerMinute: 3 } })] })
  const u1 = await userJwt('u1')
  t.equal((await b.token(u1, {})).status, 200)
  const last = await b.token(u1, {})
  t.equal(last.headers['ratelimit-remaining'], '0')
  const over = await b.token(u1, {})
  assertError(t, over, 'RATE_LIMITED')
  t.ok(Number(over.headers['retry-after']) >= 1 && Number(over.headers['retry-after']) <= 60)
  t.equal(over.headers['ratelimit-limit'], '2')
  const u2 = await userJwt('u2')
  t.equal((await b.token(u2, {})).status, 200, 'another subject has its own window')
  const tenantOver = await b.token(u2, {})
  assertError(t, tenantOver, 'RATE_LIMITED')
  t.match(tenantOver.body.message, /tenant/)
  const metrics = (await b.app.inject('/metrics')).body
  t.match(metrics, /tiktools_broker_rate_limit_rejections_total\{tenant="acme",scope="subject"\} 1/)
  t.match(metrics, /tiktools_broker_rate_limit_rejections_total\{tenant="acme",scope="tenant"\} 1/)
})

t.test('INTERNAL hides the cause and logs it', async (t) => {
  const broken = {
    take: async () => {
      throw new TypeError('counter exploded')
    },
    peek: async () => ({ count: 0, resetInMs: 0 }),
    close: async () => {},
  }
  const b = await buildBroker(t, { tenants: [acme({ limits: { upstreamMintsPerMinute: 5 } })], deps: { counters: broken } })
  const res = await b.token(await userJwt('u1'), {})
  assertError(t, res, 'INTERNAL')
  t.equal(res.body.message, ERRORS.INTERNAL.message)
  t.ok(b.logs.some((l) => l.includes('counter exploded')), 'the log has the details')
})
