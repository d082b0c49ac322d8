import { exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose'
import t from 'tap'
import { claimAt, claimValues } from '../../src/auth/claims.js'
import { tenantView } from '../../src/admin/tenant-view.js'
import { summariseTenants } from '../../src/cli/tenant-summary.js'
import type { Tenant } from '../../src/config/tenant-schema.js'
import { parseTenantsText } from '../../src/config/tenants-file.js'
import { buildBroker, rememberSecret, tenant } from '../helpers/broker.js'

/*
 * Tokens shaped the way the hosted providers document them, signed here with
 * one RSA key (the key source is not what these tests are about; discovery has
 * its own tests against a real provider).
 */
const AUTH0 = 'https://acme.eu.auth0.com/'
const SUPABASE = 'https://abcdefghijklmnop.supabase.co/auth/v1'
const CLERK = 'https://clerk.app.example'
const COGNITO = 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEfGhI'
const FIREBASE = 'https://securetoken.google.com/acme-live'

async function signer() {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true })
  const sign = async (claims: JWTPayload, key: CryptoKey = privateKey): Promise<string> => {
    const jwt = await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setIssuedAt().setExpirationTime('5m').sign(key)
    rememberSecret(jwt)
    return jwt
  }
  return { pem: await exportSPKI(publicKey), sign }
}

t.test('claimAt: exact keys (URL keys too), then dotted paths, own properties only', async (t) => {
  const claims = JSON.parse(
    '{"https://app.example/creators":["a1"],"app_metadata":{"creators":["a2"],"nested":{"deep":"x"}},"cognito:groups":["g"],' +
      '"a.b":{"c":1},"__proto__":{"polluted":true},"https://app.example/claims":{"tier":"pro"}}',
  )
  t.same(claimAt(claims, 'https://app.example/creators'), ['a1'], 'a URL key with dots is read whole')
  t.same(claimAt(claims, 'app_metadata.creators'), ['a2'])
  t.equal(claimAt(claims, 'app_metadata.nested.deep'), 'x')
  t.same(claimAt(claims, 'cognito:groups'), ['g'])
  t.equal(claimAt(claims, 'a.b.c'), 1, 'a key containing a dot, then a path below it')
  t.equal(claimAt(claims, 'https://app.example/claims.tier'), 'pro', 'a path below a URL key')
  t.equal(claimAt(claims, 'app_metadata.missing'), undefined)
  t.equal(claimAt(claims, 'app_metadata.creators.length'), undefined, 'no walking into arrays or prototypes')
  t.equal(claimAt(claims, 'constructor'), undefined)
  t.equal(claimAt(claims, 'toString'), undefined)
  t.same(claimAt(claims, '__proto__'), { polluted: true }, 'a JSON __proto__ key is plain data')
  t.equal(claimAt({ sub: 'x' }, 'sub.length'), undefined)
  t.same(claimValues({ aud: 'x' }, 'aud'), ['x'])
  t.same(claimValues({ aud: ['x', 1, 'y'] }, 'aud'), ['x', 'y'])
  t.same(claimValues({}, 'aud'), [])
})

t.test('hosted providers: each one’s documented claim shape works as the README recipe says', async (t) => {
  const { pem, sign } = await signer()
  const creators = { allowed: ['a1', 'a2', 'a3'] as string[] }
  const b = await buildBroker(t, {
    tenants: [
      tenant('auth0', {
        auth: { jwt: { issuer: AUTH0, audience: 'tiktok-broker', publicKey: pem, creatorsClaim: 'https://app.example/creators' } },
        creators,
      }),
      tenant('supabase', {
        auth: { jwt: { issuer: SUPABASE, audience: 'authenticated', publicKey: pem, creatorsClaim: 'app_metadata.creators' } },
        creators,
      }),
      tenant('clerk', {
        auth: { jwt: { issuer: CLERK, publicKey: pem, authorizedParties: ['https://app.example'], creatorsClaim: 'metadata.creators' } },
        creators,
      }),
      tenant('cognito', {
        auth: {
          jwt: { issuer: COGNITO, audience: '5r2n9c1example', audienceClaim: 'client_id', publicKey: pem, creatorsClaim: 'cognito:groups' },
        },
        creators,
      }),
      tenant('firebase', {
        auth: { jwt: { issuer: FIREBASE, audience: 'acme-live', publicKey: pem, creatorsClaim: 'tiktok_creators', subjectClaim: 'user_id' } },
        creators,
      }),
    ],
  })
  const granted = async (token: string) => {
    const r = await b.token(token, {})
    return r.status === 200 ? r.body.data.allowed_creators : r.status
  }

  // Auth0: access token for an API; custom claims must be namespaced with a URL.
  const auth0 = {
    iss: AUTH0,
    sub: 'auth0|64b0c0ffee',
    aud: ['tiktok-broker', `${AUTH0}userinfo`],
    azp: 'spa-client-id',
    scope: 'openid profile',
    'https://app.example/creators': ['a1', '@A2'],
  }
  t.same(await granted(await sign(auth0)), ['a1', 'a2'])
  t.equal(await granted(await sign({ ...auth0, aud: `${AUTH0}userinfo` })), 401, 'a token for another API')

  // Supabase: aud "authenticated", the app's own data in app_metadata (user_metadata is user-editable: never use it).
  const supabase = {
    iss: SUPABASE,
    sub: '0b8e2f0e-1c6a-4f7e-9c44-1d5c5a1b2c3d',
    aud: 'authenticated',
    role: 'authenticated',
    email: 'u@example.com',
    app_metadata: { provider: 'email', providers: ['email'], creators: ['a2'] },
    user_metadata: { creators: ['a1', 'a2', 'a3'] },
  }
  t.same(await granted(await sign(supabase)), ['a2'])
  t.equal(await granted(await sign({ ...supabase, app_metadata: { provider: 'email' } })), 403, 'no claim: no creator (fail closed)')

  // Clerk: session tokens carry no aud; azp is the origin of the page that got the token.
  const clerk = { iss: CLERK, sub: 'user_2NNEqL2nrIRdJ194ndJqAHwEfxC', azp: 'https://app.example', sid: 'sess_x', metadata: { creators: 'a1 a3' } }
  t.same(await granted(await sign(clerk)), ['a1', 'a3'], 'a space-separated string from a custom session claim')
  t.equal(await granted(await sign({ ...clerk, azp: 'https://evil.example' })), 401, 'azp not in authorizedParties')
  const { azp: _azp, ...noAzp } = clerk
  t.equal(await granted(await sign(noAzp)), 401, 'no azp at all')

  // Cognito access token: no aud, client_id instead; groups under a key with a colon.
  const cognito = {
    iss: COGNITO,
    sub: 'c1a2b3c4-0000-4000-8000-000000000001',
    client_id: '5r2n9c1example',
    token_use: 'access',
    scope: 'aws.cognito.signin.user.admin',
    username: 'viewer1',
    'cognito:groups': ['a3'],
  }
  t.same(await granted(await sign(cognito)), ['a3'])
  t.equal(await granted(await sign({ ...cognito, client_id: 'another-app-client' })), 401, 'another app client')
  const { client_id: _cid, ...noClientId } = cognito
  t.equal(await granted(await sign({ ...noClientId, aud: '5r2n9c1example' })), 401, 'with audienceClaim: client_id, aud does not stand in')

  // Firebase: iss securetoken.google.com/<project>, aud the project id; custom claims sit at the top level.
  const firebase = {
    iss: FIREBASE,
    aud: 'acme-live',
    sub: 'kXyZ12uid',
    user_id: 'kXyZ12uid',
    auth_time: Math.floor(Date.now() / 1000) - 60,
    firebase: { identities: { email: ['u@example.com'] }, sign_in_provider: 'password' },
    tiktok_creators: ['a1'],
  }
  t.same(await granted(await sign(firebase)), ['a1'])
  t.equal(await granted(await sign({ ...firebase, aud: 'other-project', iss: 'https://securetoken.google.com/other-project' })), 401)
})

t.test('subjectClaim as a dotted path or a URL key', async (t) => {
  const { pem, sign } = await signer()
  const b = await buildBroker(t, {
    tenants: [
      tenant('nested', { auth: { jwt: { issuer: 'https://n.example/', publicKey: pem, subjectClaim: 'app_metadata.account' } }, creators: { allowed: ['a1'] } }),
      tenant('url', { auth: { jwt: { issuer: 'https://u.example/', publicKey: pem, subjectClaim: 'https://app.example/uid' } }, creators: { allowed: ['a1'] } }),
    ],
  })
  const nested = await b.token(await sign({ iss: 'https://n.example/', sub: 'ignored', app_metadata: { account: 'acct-7' } }), {})
  t.equal(nested.status, 200)
  const url = await b.token(await sign({ iss: 'https://u.example/', 'https://app.example/uid': 42 }), {})
  t.equal(url.status, 200)
  const missing = await b.token(await sign({ iss: 'https://n.example/', sub: 'x', app_metadata: {} }), {})
  t.equal(missing.status, 401)
  t.match(missing.body.message, /no usable subject/)
  // The subject is what the cache is keyed by: two accounts never share a token.
  const other = await b.token(await sign({ iss: 'https://n.example/', sub: 'ignored', app_metadata: { account: 'acct-8' } }), {})
  t.equal(other.body.data.cached, false)
  t.equal((await b.token(await sign({ iss: 'https://n.example/', app_metadata: { account: 'acct-7' } }), {})).body.data.cached, true)
})

t.test('the new settings are validated like the rest of the file', async (t) => {
  const issues = (text: string): string[] => {
    try {
      parseTenantsText(text, {})
      return []
    } catch (err) {
      return (err as { issues: string[] }).issues
    }
  }
  t.same(issues('tenants:\n  a:\n    auth: {jwt: {issuer: "https://idp.example/"}}\n'), [], 'an issuer alone is OIDC discovery')
  t.match(issues('tenants:\n  a:\n    auth: {jwt: {audience: x}}\n'), [/tenants\.a\.auth\.jwt: exactly one of secret, publicKey or jwksUrl is required \(or only an issuer/])
  t.match(issues('tenants:\n  a:\n    auth: {jwt: {issuer: "idp.example"}}\n'), [/tenants\.a\.auth\.jwt\.issuer: OIDC discovery needs an http\(s\) issuer URL/])
  t.match(issues('tenants:\n  a:\n    auth: {jwt: {issuer: "https://idp.example/?x=1"}}\n'), [/auth\.jwt\.issuer: OIDC discovery/])
  t.match(issues('tenants:\n  a:\n    auth: {jwt: {issuer: "https://idp.example/", algorithms: [HS256]}}\n'), [/auth\.jwt\.algorithms: HS256 cannot be used/])
  t.match(issues('tenants:\n  a:\n    auth: {jwt: {issuer: "https://idp.example/", audienceClaim: client_id}}\n'), [/auth\.jwt\.audienceClaim: audienceClaim needs an audience/])
  t.match(issues('tenants:\n  a:\n    auth: {jwt: {issuer: "https://idp.example/", authorizedParties: []}}\n'), [/auth\.jwt\.authorizedParties/])
  const [a] = parseTenantsText('tenants:\n  a:\n    auth: {jwt: {issuer: "https://idp.example/"}}\n', {})
  t.same(a?.auth.jwt?.algorithms.includes('HS256'), false, 'discovery means asymmetric algorithms only')
  t.equal(a?.auth.jwt?.audienceClaim, 'aud')
  t.match(summariseTenants([a as Tenant])[0], /auth: jwt discovery/, 'check-config says how keys are found')
  t.match(tenantView(a as Tenant, undefined).auth.jwt, { key: 'discovery', jwksUrl: null, audienceClaim: 'aud', authorizedParties: null })
})
