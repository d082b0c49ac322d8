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

t.test('the preflight for /v1/token: every tenant origin, the methods and headers a token request sends', async (t) => {
  const b = await broker(t)
  for (const origin of [ACME, OTHER]) {
    const res = await b.app.inject({
      method: 'OPTIONS',
      url: '/v1/token',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    })
    t.equal(res.statusCode, 204)
    t.equal(res.body, '')
    t.equal(res.headers['access-control-allow-origin'], origin)
    t.equal(res.headers['access-control-allow-methods'], 'POST')
    t.equal(res.headers['access-control-allow-headers'], 'Authorization, Content-Type')
    t.equal(res.headers['access-control-max-age'], '600')
    t.match(res.headers['access-control-expose-headers'], /X-RateLimit-Remaining.*RateLimit-Reset.*Retry-After/)
    t.equal(res.headers.vary, 'Origin')
    t.equal(res.headers['content-length'], '0')
  }
})

// Every answer is in the contract's body, the preflight's refusals included: no text/plain from the plugin.
t.test('a preflight is answered for the token route only; elsewhere an OPTIONS is a 404 in the contract body', async (t) => {
  const b = await broker(t)
  const noMethod = await b.app.inject({ method: 'OPTIONS', url: '/v1/token', headers: { origin: ACME } })
  t.equal(noMethod.statusCode, 204, 'an allowed origin without Access-Control-Request-Method is answered as a preflight')
  t.equal(noMethod.headers['access-control-allow-origin'], ACME)
  t.equal(noMethod.body, '')
  for (const headers of [{ origin: 'https://evil.example', 'access-control-request-method': 'POST' }, { origin: 'https://evil.example' }]) {
    const unknown = await b.app.inject({ method: 'OPTIONS', url: '/v1/token', headers })
    t.equal(unknown.statusCode, 403, 'an origin no tenant allows: the token route refuses it')
    t.equal(unknown.json().code, 'ORIGIN_NOT_ALLOWED')
    t.equal(unknown.headers['access-control-allow-origin'], undefined)
    t.match(unknown.headers['content-type'], /^application\/json/)
  }
  const noOrigin = await b.app.inject({ method: 'OPTIONS', url: '/v1/token' })
  t.equal(noOrigin.statusCode, 404, 'OPTIONS without an Origin is no preflight, and no route')
  t.equal(noOrigin.json().code, 'NOT_FOUND')
  // No other route takes a preflight: an unknown path, an /admin/ one without ADMIN_TOKEN (no such route), a GET route.
  for (const url of ['/healthz', '/nope', '/admin/tenants', '/admin/tenants/acme/subjects/u1/tokens']) {
    for (const origin of [ACME, 'https://evil.example', undefined]) {
      const res = await b.app.inject({ method: 'OPTIONS', url, headers: { ...(origin !== undefined && { origin }), 'access-control-request-method': 'DELETE' } })
      t.equal(res.statusCode, 404, `OPTIONS ${url} from ${origin ?? 'no origin'}`)
      t.equal(res.json().code, 'NOT_FOUND')
      t.equal(res.headers['access-control-allow-methods'], undefined, 'no preflight answer')
    }
  }
})

t.test('with ADMIN_TOKEN: /admin/ answers carry no CORS headers, and its preflight gets the 401', async (t) => {
  const b = await buildBroker(t, { tenants: [acme()], config: { adminToken: 'admin-token-0123456789abcdef' } })
  const read = await b.app.inject({ method: 'GET', url: '/admin/tenants', headers: { origin: ACME, authorization: 'Bearer admin-token-0123456789abcdef' } })
  t.equal(read.statusCode, 200)
  t.equal(read.headers['access-control-allow-origin'], undefined, 'a tenant origin cannot read an admin answer')
  t.equal(read.headers['access-control-expose-headers'], undefined)
  for (const url of ['/admin/tenants', '/admin/reload', '/admin/tenants/acme/subjects/u1/tokens', '/admin/nope']) {
    const res = await b.app.inject({ method: 'OPTIONS', url, headers: { origin: ACME, 'access-control-request-method': 'GET' } })
    t.equal(res.statusCode, 401, `OPTIONS ${url}: no credential, the admin refusal`)
    t.equal(res.json().code, 'UNAUTHENTICATED')
    t.equal(res.headers['access-control-allow-origin'], undefined)
    t.equal(res.headers['access-control-allow-methods'], undefined)
  }
  // The public GET routes keep CORS for a tenant's origin.
  const health = await b.app.inject({ method: 'GET', url: '/healthz', headers: { origin: ACME } })
  t.equal(health.headers['access-control-allow-origin'], ACME)
})
