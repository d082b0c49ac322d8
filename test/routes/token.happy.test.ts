import { decodeJwt } from 'jose'
import t from 'tap'
import { hashApiKey } from '../../src/auth/api-keys.js'
import { acme, buildBroker, rememberSecret, tenant, userJwt, USER_SECRET, ISSUER } from '../helpers/broker.js'

t.test('a first request mints, the second is served from cache with the same token', async (t) => {
  const b = await buildBroker(t)
  const jwt = await userJwt('user-1')
  const first = await b.token(jwt, { allowed_creators: ['@A1'] })
  t.equal(first.status, 200)
  t.equal(first.body.status_code, 0)
  t.equal(first.body.data.cached, false)
  t.same(first.body.data.allowed_creators, ['a1'])
  t.equal(first.body.data.expire_after, 600, 'tenant default lifetime')
  t.equal(first.body.data.max_websockets, 1)
  const claims = decodeJwt(first.body.data.token)
  // The broker's clock: receive time + (exp − iat); a mint that crosses a second boundary may land 1 s later.
  t.ok(first.body.data.expires_at - (claims.exp as number) >= 0 && first.body.data.expires_at - (claims.exp as number) <= 1, 'expires_at is receive time + the token lifetime')
  t.equal(first.headers['cache-control'], 'no-store')
  t.equal(first.headers['x-ratelimit-limit'], '60', 'upstream limit passed through')
  t.equal(first.headers['x-ratelimit-remaining'], '59')
  t.ok(Number(first.headers['x-ratelimit-reset']) > Date.now() / 1000, 'upstream reset is a unix time')
  t.equal(first.headers['ratelimit-limit'], '60', "broker's own per-subject limit")
  t.equal(first.headers['ratelimit-remaining'], '59')

  const second = await b.token(jwt, { allowed_creators: ['a1'] })
  t.equal(second.status, 200)
  t.equal(second.body.data.cached, true)
  t.equal(second.body.data.token, first.body.data.token)
  t.equal(second.headers['x-ratelimit-remaining'], '59', 'last observed upstream values on a hit')
  t.equal(second.headers['ratelimit-remaining'], '58')
  t.equal(b.sim.stats.mints, 1, 'one upstream call for two requests')
})

t.test('the broker sends all three upstream fields explicitly, clamped to the tenant', async (t) => {
  const b = await buildBroker(t, {
    tenants: [acme({ token: { expireAfter: { default: 300, max: 900 }, maxWebsockets: { default: 1, max: 3 } } })],
  })
  const jwt = await userJwt('user-1')
  const res = await b.token(jwt, { allowed_creators: ['a2', 'a1', 'A2'], expire_after: 7200, max_websockets: 10 })
  t.equal(res.status, 200)
  t.same(res.body.data.allowed_creators, ['a1', 'a2'], 'normalised, de-duplicated, sorted')
  t.equal(res.body.data.expire_after, 900, 'clamped to max')
  t.equal(res.body.data.max_websockets, 3, 'clamped to max')
  t.same(b.sim.lastBodies.at(-1), { expire_after: 900, max_websockets: 3, allowed_creators: ['a1', 'a2'] })
  const claims = decodeJwt(res.body.data.token)
  t.equal(claims.max_websockets, 3)

  const huge = await b.token(jwt, { allowed_creators: ['a1'], expire_after: 10 ** 12, max_websockets: 10 ** 9 })
  t.equal(huge.status, 200, 'any large value is clamped, not refused')
  t.equal(huge.body.data.expire_after, 900)

  const defaults = await b.token(jwt, { allowed_creators: ['a3'] })
  t.same(b.sim.lastBodies.at(-1), { expire_after: 300, max_websockets: 1, allowed_creators: ['a3'] })
  t.equal(defaults.body.data.expire_after, 300)
})

t.test('creator order and case do not change the cache key', async (t) => {
  const b = await buildBroker(t)
  const jwt = await userJwt('user-1')
  const one = await b.token(jwt, { allowed_creators: ['a2', 'a1'] })
  const two = await b.token(jwt, { allowed_creators: ['@A1', 'a2'] })
  t.equal(two.body.data.token, one.body.data.token)
  t.equal(b.sim.stats.mints, 1)
})

t.test('no body at all asks for the whole allowed list', async (t) => {
  const b = await buildBroker(t)
  const jwt = await userJwt('user-1')
  const res = await b.token(jwt)
  t.equal(res.status, 200)
  t.same(res.body.data.allowed_creators, ['a1', 'a2', 'a3'])
  const empty = await b.token(jwt, '')
  t.equal(empty.status, 200, 'an empty JSON body is {} too')
  t.equal(empty.body.data.cached, true)
})

t.test('100 concurrent misses for one key make one upstream call', async (t) => {
  const b = await buildBroker(t, { tenants: [acme({ limits: { perSubjectPerMinute: 1000 } })] })
  b.sim.setFaults({ latencyMs: 50 })
  const jwt = await userJwt('user-1')
  const answers = await Promise.all(Array.from({ length: 100 }, () => b.token(jwt, { allowed_creators: ['a1'] })))
  t.ok(answers.every((a) => a.status === 200), 'all succeed')
  t.equal(new Set(answers.map((a) => a.body.data.token)).size, 1, 'all get the same token')
  t.equal(b.sim.stats.requests, 1, 'exactly one upstream request')
  t.equal(answers.filter((a) => a.body.data.cached === false).length, 100, 'none was a cache hit: all shared one mint')
  const metrics = await b.app.inject('/metrics')
  t.match(metrics.body, /tiktools_broker_cache_total\{tenant="acme",result="coalesced"\} 99/)
})

t.test('two subjects never share a token unless the tenant shares by grant', async (t) => {
  const b = await buildBroker(t, {
    tenants: [acme(), tenant('shared', { auth: { jwt: { issuer: 'https://shared/', secret: USER_SECRET } }, creators: { allowed: ['a1'] }, token: { share: 'grant' } })],
  })
  const [u1, u2] = await Promise.all([userJwt('u1'), userJwt('u2')])
  const t1 = await b.token(u1, { allowed_creators: ['a1'] })
  const t2 = await b.token(u2, { allowed_creators: ['a1'] })
  t.not(t1.body.data.token, t2.body.data.token)
  t.equal(t2.body.data.cached, false)
  t.equal(b.sim.stats.mints, 2)

  const [s1, s2] = await Promise.all([userJwt('u1', {}, { issuer: 'https://shared/' }), userJwt('u2', {}, { issuer: 'https://shared/' })])
  const g1 = await b.token(s1, { allowed_creators: ['a1'] })
  const g2 = await b.token(s2, { allowed_creators: ['a1'] })
  t.equal(g2.body.data.token, g1.body.data.token, 'share: grant serves one token to both')
  t.equal(g2.body.data.cached, true)
  t.equal(b.sim.stats.mints, 3)
})

t.test('a cached token is re-minted once fewer than minRemaining seconds are left', async (t) => {
  let offset = 0
  const b = await buildBroker(t, {
    tenants: [acme({ token: { expireAfter: { default: 600, max: 600 }, minRemaining: 60 } })],
    deps: { now: () => Date.now() + offset },
  })
  const jwt = await userJwt('user-1')
  const first = await b.token(jwt, { allowed_creators: ['a1'] })
  offset = 530_000 // 70 s left: still served
  const second = await b.token(jwt, { allowed_creators: ['a1'] })
  t.equal(second.body.data.token, first.body.data.token)
  offset = 545_000 // 55 s left: below minRemaining
  const third = await b.token(jwt, { allowed_creators: ['a1'] })
  t.equal(third.body.data.cached, false)
  t.equal(b.sim.stats.mints, 2)
})

t.test('minRemaining never exceeds half the token lifetime', async (t) => {
  let offset = 0
  const b = await buildBroker(t, {
    tenants: [acme({ token: { expireAfter: { default: 60, max: 60 }, minRemaining: 300 } })],
    deps: { now: () => Date.now() + offset },
  })
  const jwt = await userJwt('user-1')
  const first = await b.token(jwt, { allowed_creators: ['a1'] })
  offset = 20_000 // 40 s of 60 left: more than half
  const second = await b.token(jwt, { allowed_creators: ['a1'] })
  t.equal(second.body.data.token, first.body.data.token, 'served although minRemaining (300) > lifetime')
  offset = 35_000 // 25 s left: under half
  const third = await b.token(jwt, { allowed_creators: ['a1'] })
  t.not(third.body.data.token, first.body.data.token)
})

t.test('creators claim: tenant list ∩ user claim, fail closed without the claim', async (t) => {
  const b = await buildBroker(t, {
    tenants: [acme({ auth: { jwt: { issuer: ISSUER, secret: USER_SECRET, creatorsClaim: 'tiktok_creators' } } })],
  })
  const listed = await userJwt('u1', { tiktok_creators: ['a1', '@A2', 'zz9'] })
  const all = await b.token(listed)
  t.same(all.body.data.allowed_creators, ['a1', 'a2'], 'intersection; names outside the tenant list dropped')
  const spaced = await userJwt('u2', { tiktok_creators: 'a3, a1 ' })
  t.same((await b.token(spaced)).body.data.allowed_creators, ['a1', 'a3'], 'string claim split on spaces and commas')
  const refused = await b.token(listed, { allowed_creators: ['a3'] })
  t.equal(refused.status, 403)
  t.equal(refused.body.code, 'CREATOR_NOT_ALLOWED')
  const none = await userJwt('u3')
  const closed = await b.token(none)
  t.equal(closed.status, 403, 'no claim allows no creator')
  t.equal(closed.body.code, 'CREATOR_NOT_ALLOWED')
})

t.test('"*" tenants mint unrestricted tokens only when allowUnrestricted is set', async (t) => {
  const b = await buildBroker(t, {
    tenants: [acme({ creators: { allowed: '*', allowUnrestricted: true } })],
  })
  const jwt = await userJwt('u1')
  const res = await b.token(jwt)
  t.equal(res.status, 200)
  t.equal(res.body.data.allowed_creators, null)
  t.same(b.sim.lastBodies.at(-1), { expire_after: 600, max_websockets: 1 }, 'no allowed_creators sent for an unrestricted token')
  const anyone = await b.token(jwt, { allowed_creators: ['whoever_123'] })
  t.equal(anyone.status, 200, 'any named creator allowed with "*"')
})

t.test('a backend with a broker API key vouches for a subject', async (t) => {
  const key = 'tkb_test_backend_key_0123456789abcdef'
  rememberSecret(key)
  const b = await buildBroker(t, {
    tenants: [tenant('backend', { auth: { apiKeys: [hashApiKey(key)] }, creators: { allowed: ['a1', 'a2'] } })],
  })
  const one = await b.token(key, { subject: 'user-42', allowed_creators: ['a1'] })
  t.equal(one.status, 200)
  const same = await b.token(key, { subject: 'user-42', allowed_creators: ['a1'] })
  t.equal(same.body.data.cached, true)
  const other = await b.token(key, { subject: 'user-43', allowed_creators: ['a1'] })
  t.not(other.body.data.token, one.body.data.token, 'subjects do not share')
  const missing = await b.token(key, { allowed_creators: ['a1'] })
  t.equal(missing.status, 400)
  t.match(missing.body.message, /subject/)
})

t.test('one log line per token request with tenant, outcome, cache and upstream latency', async (t) => {
  const b = await buildBroker(t)
  const jwt = await userJwt('user-1')
  await b.token(jwt, { allowed_creators: ['a1'] })
  await b.token(jwt, { allowed_creators: ['a1'] })
  const lines = b.logs.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request' && l.path === '/v1/token')
  t.equal(lines.length, 2)
  t.match(lines[0], { tenant: 'acme', outcome: 'ok', cache: 'mint', status: 200, upstreamMs: Number })
  t.match(lines[1], { tenant: 'acme', outcome: 'ok', cache: 'hit', status: 200 })
  const audit = b.logs.map((l) => JSON.parse(l)).filter((l) => l.channel === 'audit')
  t.equal(audit.length, 1, 'one audit line per upstream mint, none for a hit')
  t.match(audit[0], {
    event: 'token.mint',
    tenant: 'acme',
    subject: /^hmac:[\w-]{22}$/,
    grant: { creators: ['a1'], expireAfter: 600, maxWebsockets: 1 },
  })
  t.notMatch(JSON.stringify(audit[0]), /user-1/, 'the subject is hashed')
})

t.test('AUDIT_SUBJECTS=plain puts subjects in clear in the audit line', async (t) => {
  const b = await buildBroker(t, { config: { auditSubjects: 'plain' } })
  await b.token(await userJwt('user-7'), { allowed_creators: ['a1'] })
  t.ok(b.logs.some((l) => l.includes('"channel":"audit"') && l.includes('"subject":"user-7"')))
})
