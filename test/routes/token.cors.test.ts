import t, { type Test } from 'tap'
import { acme, buildBroker, tenant, userJwt, USER_SECRET } from '../helpers/broker.js'

// The token route does CORS in its own hook (one pass on the hot path); every other route and the
// preflight keep @fastify/cors. A browser must see the same headers from both.
const ACME = 'https://app.acme.example'
const OTHER = 'https://app.other.example'

async function broker(t: Test) {
  const other = tenant('other', { auth: { jwt: { issuer: 'https://other.example/', secret: USER_SECRET } }, cors: { origins: [OTHER] }, creators: { allowed: ['a1'] } })
  return buildBroker(t, { tenants: [acme(), other] })
}


t.test("the token route's CORS headers are the plugin's, on answers and refusals alike", async (t) => {
  const b = await broker(t)
  const jwt = await userJwt('u1')
  const plugin = await b.app.inject({ method: 'GET', url: '/healthz', headers: { origin: ACME } })
  const ok = await b.token(jwt, {}, { origin: ACME })
  t.equal(ok.status, 200)
  for (const name of ['access-control-allow-origin', 'access-control-expose-headers', 'vary']) {
    t.equal(ok.headers[name], plugin.headers[name], `${name} as @fastify/cors sends it`)
  }
  t.equal(ok.headers.vary, 'Origin')

  // Refusals a browser must be able to read: no credential, a body that is not JSON, a limit.
  const none = await b.token(undefined, {}, { origin: ACME })
  t.equal(none.status, 401)
  t.equal(none.headers['access-control-allow-origin'], ACME)
  const text = await b.app.inject({ method: 'POST', url: '/v1/token', headers: { authorization: `Bearer ${jwt}`, origin: ACME, 'content-type': 'text/plain' }, payload: 'x' })
  t.equal(text.statusCode, 415)
  t.equal(text.headers['access-control-allow-origin'], ACME)
  t.match(text.headers['access-control-expose-headers'], /Retry-After/)
})

t.test("an origin of another tenant may read the refusal; an unknown origin gets no CORS headers", async (t) => {
  const b = await broker(t)
  const jwt = await userJwt('u1')
  const foreign = await b.token(jwt, {}, { origin: OTHER })
  t.equal(foreign.status, 403)
  t.equal(foreign.body.code, 'ORIGIN_NOT_ALLOWED')
  t.equal(foreign.headers['access-control-allow-origin'], OTHER, 'as the plugin does for any tenant’s origin')
  const unknown = await b.token(jwt, {}, { origin: 'https://evil.example' })
  t.equal(unknown.status, 403)
  t.equal(unknown.headers['access-control-allow-origin'], undefined)
  t.equal(unknown.headers['access-control-expose-headers'], undefined)
  t.equal(unknown.headers.vary, 'Origin')
  const noOrigin = await b.token(jwt, {})
  t.equal(noOrigin.status, 200)
  t.equal(noOrigin.headers['access-control-allow-origin'], undefined, 'a backend call gets none')
})

t.test('the preflight for /v1/token is still answered by the plugin', async (t) => {
  const b = await broker(t)
  const res = await b.app.inject({
    method: 'OPTIONS',
    url: '/v1/token',
    headers: { origin: ACME, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
  })
  t.equal(res.statusCode, 204)
  t.equal(res.headers['access-control-allow-origin'], ACME)
  t.match(res.headers['access-control-allow-methods'], /POST/)
  t.match(res.headers['access-control-allow-headers'], /Authorization/)
})

// Every answer is in the contract's body, the preflight's refusals included: no text/plain from the plugin.
t.test("preflights that are not the plugin's to answer: the contract's body, never the plugin's text", async (t) => {
  const b = await broker(t)
  for (const url of ['/v1/token', '/healthz', '/admin/tenants']) {
    const noMethod = await b.app.inject({ method: 'OPTIONS', url, headers: { origin: ACME } })
    t.equal(noMethod.statusCode, 204, `${url}: an allowed origin without Access-Control-Request-Method is answered as a preflight`)
    t.equal(noMethod.headers['access-control-allow-origin'], ACME)
    t.equal(noMethod.body, '')
    // The token route's preflight from an origin no tenant allows is that route's refusal; elsewhere there is no route to refuse.
    const [status, code] = url === '/v1/token' ? [403, 'ORIGIN_NOT_ALLOWED'] : [404, 'NOT_FOUND']
    const unknown = await b.app.inject({ method: 'OPTIONS', url, headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } })
    t.equal(unknown.statusCode, status, `${url}: an origin no tenant allows`)
    t.equal(unknown.json().code, code)
    t.equal(unknown.headers['access-control-allow-origin'], undefined)
    t.match(unknown.headers['content-type'], /^application\/json/)
    const unknownNoMethod = await b.app.inject({ method: 'OPTIONS', url, headers: { origin: 'https://evil.example' } })
    t.equal(unknownNoMethod.statusCode, status)
    t.equal(unknownNoMethod.json().code, code)
    const noOrigin = await b.app.inject({ method: 'OPTIONS', url })
    t.equal(noOrigin.statusCode, 404, `${url}: OPTIONS without an Origin is no preflight, and no route`)
    t.equal(noOrigin.json().code, 'NOT_FOUND')
  }
})
