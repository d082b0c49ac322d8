import { decodeProtectedHeader } from 'jose'
import t, { type Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config/index.js'
import { createLogger } from '../../src/logger.js'
import { startSimulator } from '../../src/simulator/index.js'
import { acme, API_KEY, buildBroker, rememberSecret, tenant, userJwt } from '../helpers/broker.js'
import { AUDIENCE, CREATORS_CLAIM, startProvider, type TestProvider } from './oidc-provider.js'

const DOCUMENT = '/.well-known/openid-configuration'

/** The provider's tokens are secrets like any user JWT: none may reach a log line. */
async function accessToken(p: TestProvider, client: string): Promise<string> {
  const token = await p.accessToken(client)
  rememberSecret(token)
  return token
}

async function provider(t: Test): Promise<TestProvider> {
  const p = await startProvider()
  t.teardown(() => p.close())
  return p
}

function oidcTenant(issuer: string) {
  return tenant('oidc', {
    auth: { jwt: { issuer, audience: AUDIENCE, creatorsClaim: CREATORS_CLAIM } },
    creators: { allowed: ['a1', 'a2', 'a3'] },
  })
}

/** A clock the test moves; everything else about time stays real. */
function clock() {
  let offset = 0
  return { now: () => Date.now() + offset, advance: (ms: number) => (offset += ms) }
}

t.test('a tenant with only an issuer verifies a real OpenID Provider’s tokens through discovery', async (t) => {
  const p = await provider(t)
  const b = await buildBroker(t, { tenants: [oidcTenant(p.issuer), acme()] })
  const web = await b.token(await accessToken(p, 'web-app'), {})
  t.equal(web.status, 200)
  t.same(web.body.data.allowed_creators, ['a1', 'a2'], 'creators from the namespaced URL claim')
  const other = await b.token(await accessToken(p, 'other-app'), { allowed_creators: ['a1'] })
  t.equal(other.status, 403)
  t.equal(other.body.code, 'CREATOR_NOT_ALLOWED')
  t.equal(p.requests.filter((r) => r === DOCUMENT).length, 1, 'the document is fetched once and cached')
  t.equal(p.requests.filter((r) => r === '/jwks').length, 1, 'so is the key set')

  const admin = b.app.broker.tenants.get('oidc')
  t.equal(admin?.auth.jwt?.jwksUrl, undefined)

  const forged = (await accessToken(p, 'web-app')).replace(/\.[^.]+$/, '.AAAA')
  const refused = await b.token(forged, {})
  t.equal(refused.status, 401, 'a bad signature is still a 401')
  t.match(refused.headers['www-authenticate'], /error="invalid_token"/)
})

t.test('a signing-key rotation at the provider is followed', async (t) => {
  const p = await provider(t)
  const c = clock()
  const b = await buildBroker(t, { tenants: [oidcTenant(p.issuer)], deps: { now: c.now } })
  const before = await accessToken(p, 'web-app')
  t.equal((await b.token(before, {})).status, 200)

  const kid = await p.rotateKey()
  const after = await accessToken(p, 'other-app')
  t.equal(decodeProtectedHeader(after).kid, kid, 'the provider signs with the new key')
  // Keys were fetched a moment ago: an unknown kid does not refetch them at once (a flood of made-up kids cannot hammer the provider).
  t.equal((await b.token(after, {})).status, 401)
  c.advance(30_000)
  const answer = await b.token(after, {})
  t.equal(answer.status, 200, 'after the cooldown the new key is fetched')
  t.same(answer.body.data.allowed_creators, ['a3'])
  t.equal((await b.token(await accessToken(p, 'web-app'), {})).status, 200)
  t.equal(p.requests.filter((r) => r === '/jwks').length, 2)
})

t.test('an unreachable provider is a 503 with Retry-After for its tenant only, and is retried', async (t) => {
  const p = await provider(t)
  const c = clock()
  const b = await buildBroker(t, { tenants: [oidcTenant(p.issuer), acme()], deps: { now: c.now } })
  const token = await accessToken(p, 'web-app')
  p.setDown(true)
  const down = await b.token(token, {})
  t.equal(down.status, 503)
  t.same(Object.keys(down.body).sort(), ['code', 'message', 'status_code'])
  t.equal(down.body.code, 'UPSTREAM_UNAVAILABLE')
  t.equal(down.headers['retry-after'], '1')
  t.equal(down.headers['www-authenticate'], undefined, 'not a 401: the user should retry, not sign in again')
  t.equal((await b.token(await userJwt('u1'), {})).status, 200, 'another tenant is not affected')

  p.setDown(false)
  const seen = p.requests.length
  t.equal((await b.token(token, {})).status, 503, 'within Retry-After: no new attempt')
  t.equal(p.requests.length, seen)
  c.advance(1000)
  t.equal((await b.token(token, {})).status, 200, 'retried after Retry-After')

  // Known keys keep working through a later outage, background refreshes included.
  const later = await accessToken(p, 'other-app')
  p.setDown(true)
  c.advance(11 * 60_000)
  t.equal((await b.token(later, {})).status, 200)
  t.match(b.logs.join(''), /OpenID Connect discovery failed/)
})

t.test('AUTH_ISSUER alone (env-only mode) uses discovery', async (t) => {
  const p = await provider(t)
  const sim = await startSimulator({ apiKeys: [API_KEY] })
  t.teardown(() => sim.close())
  const config = await loadConfig({
    TIKTOOLS_API_KEY: API_KEY,
    UPSTREAM_URL: sim.url,
    AUTH_ISSUER: p.issuer,
    AUTH_AUDIENCE: AUDIENCE,
    AUTH_CREATORS_CLAIM: CREATORS_CLAIM,
    ALLOWED_CREATORS: 'a1,a2,a3',
    LOG_LEVEL: 'silent',
  })
  t.equal(config.tenants[0]?.auth.jwt?.issuer, p.issuer)
  t.same(config.warnings, [])
  const app = await buildApp(config, { logger: createLogger('silent') })
  t.teardown(() => app.close())
  const res = await app.inject({
    method: 'POST',
    url: '/v1/token',
    headers: { authorization: `Bearer ${await accessToken(p, 'web-app')}`, 'content-type': 'application/json' },
    payload: '{}',
  })
  t.equal(res.statusCode, 200)
  t.same(res.json().data.allowed_creators, ['a1', 'a2'])
  const bad = await loadConfig({ TIKTOOLS_API_KEY: API_KEY, AUTH_ISSUER: 'not a url' }).catch((e: unknown) => e)
  t.match(bad, { issues: [/^AUTH_ISSUER: OIDC discovery needs an http\(s\) issuer URL/] })
})
