import t from 'tap'
import { acme, buildBroker, tenant, userJwt, USER_SECRET } from '../helpers/broker.js'
import type { TestBroker } from '../helpers/broker.js'

const ADMIN = 'admin-token-for-tests-0123456789'
const auth = { authorization: `Bearer ${ADMIN}` }

function admin(b: TestBroker, method: 'GET' | 'PATCH' | 'DELETE' | 'POST', url: string, body?: unknown, type = 'application/json') {
  return b.app.inject({
    method,
    url,
    headers: { ...auth, ...(body !== undefined && { 'content-type': type }) },
    ...(body !== undefined && { payload: JSON.stringify(body) }),
  })
}

t.test('every /admin/ path is 404 without ADMIN_TOKEN', async (t) => {
  const b = await buildBroker(t)
  for (const url of ['/admin/tenants', '/admin/tenants/acme', '/admin/reload']) {
    const res = await b.app.inject({ method: 'GET', url, headers: auth })
    t.equal(res.statusCode, 404, url)
    t.equal(res.json().code, 'NOT_FOUND')
  }
})

t.test('admin calls without the right token are 401', async (t) => {
  const b = await buildBroker(t, { config: { adminToken: ADMIN } })
  const none = await b.app.inject('/admin/tenants')
  t.equal(none.statusCode, 401)
  t.equal(none.json().code, 'UNAUTHENTICATED')
  const wrong = await b.app.inject({ url: '/admin/tenants', headers: { authorization: `Bearer ${ADMIN}x` } })
  t.equal(wrong.statusCode, 401)
  t.match(wrong.headers['www-authenticate'], /invalid_token/)
  const unknown = await b.app.inject({ method: 'POST', url: '/admin/nope' })
  t.equal(unknown.statusCode, 401, 'an unknown /admin/ path asks for the token first')
  const known = await b.app.inject({ method: 'POST', url: '/admin/nope', headers: { authorization: `Bearer ${ADMIN}` } })
  t.equal(known.statusCode, 404)
  t.equal(known.json().code, 'NOT_FOUND')
  const userToken = await b.app.inject({ url: '/admin/tenants', headers: { authorization: `Bearer ${await userJwt('u1')}` } })
  t.equal(userToken.statusCode, 401, 'a user JWT is no admin token')
})

t.test('list and show tenants with their effective policy, secrets never shown', async (t) => {
  const { hashApiKey } = await import('../../src/auth/api-keys.js')
  const keyHash = hashApiKey('some-backend-key')
  const b = await buildBroker(t, {
    config: { adminToken: ADMIN },
    tenants: [acme({ auth: { jwt: { issuer: 'https://auth.test.example/', secret: USER_SECRET }, apiKeys: [keyHash] } })],
  })
  const list = await admin(b, 'GET', '/admin/tenants')
  t.equal(list.statusCode, 200)
  t.equal(list.headers['cache-control'], 'no-store')
  const [view] = list.json().tenants
  t.match(view, {
    id: 'acme',
    enabled: true,
    auth: { jwt: { key: 'secret', issuer: 'https://auth.test.example/', algorithms: ['HS256', 'HS384', 'HS512'] }, apiKeys: 1 },
    creators: { allowed: ['a1', 'a2', 'a3'] },
    token: { expireAfter: { default: 600, max: 3600 } },
    limits: { perSubjectPerMinute: 60, perTenantPerMinute: 6000, upstreamMintsPerMinute: null },
  })
  t.notMatch(list.body, USER_SECRET)
  t.notMatch(list.body, keyHash.slice(7))
  t.same((await admin(b, 'GET', '/admin/tenants/acme')).json(), view)
  const missing = await admin(b, 'GET', '/admin/tenants/nope')
  t.equal(missing.statusCode, 404)
  t.equal(missing.json().code, 'NOT_FOUND')
})

t.test('PATCH changes limits, lifetime and the switch at run time, validated like the file', async (t) => {
  const b = await buildBroker(t, { config: { adminToken: ADMIN } })
  const jwt = await userJwt('u1')
  t.equal((await b.token(jwt, { allowed_creators: ['a1'] })).status, 200)

  const patched = await admin(b, 'PATCH', '/admin/tenants/acme', { limits: { perSubjectPerMinute: 2 }, token: { expireAfter: { max: 300 } } })
  t.equal(patched.statusCode, 200)
  t.match(patched.json(), { limits: { perSubjectPerMinute: 2 }, token: { expireAfter: { default: 300, max: 300 } } })
  const res = await b.token(jwt, { allowed_creators: ['a2'], expire_after: 3600 })
  t.equal(res.body.data.expire_after, 300, 'the new max applies to the next request')
  t.equal(res.headers['ratelimit-limit'], '2')

  const merged = await admin(b, 'PATCH', '/admin/tenants/acme', { limits: { upstreamMintsPerMinute: 5 } }, 'application/merge-patch+json')
  t.match(merged.json().limits, { perSubjectPerMinute: 2, upstreamMintsPerMinute: 5 }, 'patches merge')
  const removed = await admin(b, 'PATCH', '/admin/tenants/acme', { limits: { upstreamMintsPerMinute: null } })
  t.equal(removed.json().limits.upstreamMintsPerMinute, null, 'null removes (JSON merge patch)')

  const off = await admin(b, 'PATCH', '/admin/tenants/acme', { enabled: false })
  t.equal(off.json().enabled, false)
  t.equal((await b.token(jwt, { allowed_creators: ['a1'] })).body.code, 'TENANT_DISABLED', 'cached tokens are not served to a disabled tenant')

  for (const [body, field] of [
    [{ limits: { perSubjectPerMinute: 'ten' } }, /limits\.perSubjectPerMinute: expected number/],
    [{ auth: { jwt: { secret: 'x' } } }, /unknown field auth/],
    [{ token: { maxWebsockets: { default: 5, max: 2 } } }, /tenants\.acme\.token\.maxWebsockets\.default/],
    [{ token: { expireAfter: { max: 10 } } }, /token\.expireAfter\.max/],
  ] as const) {
    const bad = await admin(b, 'PATCH', '/admin/tenants/acme', body)
    t.equal(bad.statusCode, 400, JSON.stringify(body))
    t.equal(bad.json().code, 'BAD_REQUEST')
    t.match(bad.json().message, field)
  }
  t.equal((await admin(b, 'GET', '/admin/tenants/acme')).json().enabled, false, 'a refused patch changes nothing')
  t.equal((await admin(b, 'PATCH', '/admin/tenants/nope', { enabled: true })).statusCode, 404)
  t.ok(b.logs.some((l) => l.includes('"channel":"audit"') && l.includes('admin.tenant.patch')), 'an audit line per change')
  // The audit line says what changed, the token section included (a key the log redacts by name, `token`, hid it).
  const lines = b.logs.filter((l) => l.includes('admin.tenant.patch')).map((l) => JSON.parse(l) as { changes?: Record<string, unknown>; actor?: string })
  t.same(lines[0]?.changes, { 'limits.perSubjectPerMinute': 2, 'token.expireAfter.max': 300 })
  t.same(lines[2]?.changes, { 'limits.upstreamMintsPerMinute': null }, 'a removal is logged as null')
  t.equal(lines[0]?.actor, 'admin-token')
  t.notMatch(b.logs.join(''), /\[redacted\]/, 'nothing of a patch is censored: it holds no secret')

  // A merge patch is an object: null (which would replace the tenant) and prototype keys are refused by name.
  for (const [payload, message] of [
    ['null', /JSON object/],
    ['{"__proto__":{"enabled":true}}', /__proto__/],
    ['{"limits":{"constructor":{"prototype":{"x":1}}}}', /constructor\.prototype/],
  ] as const) {
    const res = await b.app.inject({ method: 'PATCH', url: '/admin/tenants/acme', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, payload })
    t.equal(res.statusCode, 400, payload)
    t.equal(res.json().code, 'BAD_REQUEST')
    t.match(res.json().message, message)
  }
  t.equal((await admin(b, 'GET', '/admin/tenants/acme')).json().enabled, false, 'the refused patches changed nothing')
})

t.test('usage: requests by outcome, cache, mints, rejections and window counts', async (t) => {
  const b = await buildBroker(t, { config: { adminToken: ADMIN }, tenants: [acme({ limits: { perSubjectPerMinute: 2, upstreamMintsPerMinute: 10 } })] })
  const jwt = await userJwt('u1')
  await b.token(jwt, { allowed_creators: ['a1'] })
  await b.token(jwt, { allowed_creators: ['a1'] })
  await b.token(jwt, { allowed_creators: ['a1'] })
  await b.token(await userJwt('u2'), { allowed_creators: ['zz9'] })
  const usage = (await admin(b, 'GET', '/admin/tenants/acme/usage')).json()
  t.match(usage, {
    tenant: 'acme',
    requests: { ok: 2, RATE_LIMITED: 1, CREATOR_NOT_ALLOWED: 1 },
    cache: { hits: 1, misses: 1, coalesced: 0 },
    upstream: { mints: 1, failures: 0 },
    rejections: { subject: 1, tenant: 0 },
    windows: { tenantRequests: { count: 3, limit: 6000 }, upstreamMints: { count: 1, limit: 10 } },
  })
})

t.test('DELETE purges one subject’s cached tokens; the next request mints anew', async (t) => {
  const b = await buildBroker(t, { config: { adminToken: ADMIN } })
  const [u1, u2] = await Promise.all([userJwt('u1'), userJwt('u2')])
  const first = await b.token(u1, { allowed_creators: ['a1'] })
  const other = await b.token(u2, { allowed_creators: ['a1'] })
  const purge = await admin(b, 'DELETE', '/admin/tenants/acme/subjects/u1/tokens')
  t.equal(purge.statusCode, 204)
  const again = await b.token(u1, { allowed_creators: ['a1'] })
  t.equal(again.body.data.cached, false)
  t.not(again.body.data.token, first.body.data.token)
  t.equal((await b.token(u2, { allowed_creators: ['a1'] })).body.data.token, other.body.data.token, 'other subjects keep theirs')
  t.equal((await admin(b, 'DELETE', '/admin/tenants/nope/subjects/u1/tokens')).statusCode, 404, 'unknown tenant')
  const unknown = await admin(b, 'DELETE', '/admin/tenants/acme/subjects/nobody/tokens')
  t.equal(unknown.statusCode, 404, 'unknown subject (nothing cached)')
  t.equal(unknown.json().code, 'NOT_FOUND')
})

t.test('POST /admin/reload without a tenants file is a 400 naming TENANTS_FILE', async (t) => {
  const b = await buildBroker(t, {
    config: { adminToken: ADMIN },
    tenants: [tenant('solo', { auth: { jwt: { secret: USER_SECRET } } })],
  })
  const res = await admin(b, 'POST', '/admin/reload')
  t.equal(res.statusCode, 400)
  t.match(res.json().message, /TENANTS_FILE/)
})
