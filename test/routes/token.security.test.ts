import { createServer } from 'node:http'
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type JWK } from 'jose'
import t from 'tap'
import { buildBroker, rememberSecret, tenant, userJwt, ISSUER, USER_SECRET } from '../helpers/broker.js'

const RSA_ISSUER = 'https://rsa.example/'
const b64 = (v: object): string => Buffer.from(JSON.stringify(v)).toString('base64url')

async function rsaSetup() {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true })
  const pem = await exportSPKI(publicKey)
  const sign = async (claims: object, header: object = {}, exp: string | number = '5m', issuer = RSA_ISSUER) => {
    const jwt = await new SignJWT({ sub: 'r1', ...claims })
      .setProtectedHeader({ alg: 'RS256', ...header })
      .setIssuer(issuer)
      .setAudience('broker')
      .setIssuedAt()
      .setExpirationTime(exp)
      .sign(privateKey)
    rememberSecret(jwt)
    return jwt
  }
  return { pem, publicKey, sign }
}

t.test('JWT attacks are refused with 401 invalid_token', async (t) => {
  const rsa = await rsaSetup()
  const b = await buildBroker(t, {
    tenants: [
      tenant('rsa', {
        auth: { jwt: { issuer: RSA_ISSUER, audience: 'broker', publicKey: rsa.pem } },
        creators: { allowed: ['a1'] },
      }),
    ],
  })
  const good = await rsa.sign({})
  t.equal((await b.token(good, {})).status, 200, 'a well-signed RS256 token passes')

  const attacker = await generateKeyPair('RS256', { extractable: true })
  const attackerJwk: JWK = await exportJWK(attacker.publicKey)
  const sign = (header: object, claims: object) =>
    new SignJWT({ sub: 'r1', ...claims })
      .setProtectedHeader({ alg: 'RS256', ...header })
      .setIssuer(RSA_ISSUER)
      .setAudience('broker')
      .setExpirationTime('5m')
      .sign(attacker.privateKey)

  const now = Math.floor(Date.now() / 1000)
  const payload = { sub: 'r1', iss: RSA_ISSUER, aud: 'broker', exp: now + 300 }
  const attacks: Record<string, string> = {
    'alg none': `${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.`,
    'HS256 signed with the RSA public key': await new SignJWT(payload)
      .setProtectedHeader({ alg: 'HS256' })
      .sign(new TextEncoder().encode(rsa.pem)),
    'embedded jwk header': await sign({ jwk: attackerJwk }, {}),
    'jku header': await sign({ jku: 'http://127.0.0.1:1/jwks.json' }, {}),
    'signed by another key': await sign({}, {}),
    expired: await rsa.sign({}, {}, now - 120),
    'not yet valid': await rsa.sign({ nbf: now + 600 }),
    'wrong audience': await new SignJWT(payload).setProtectedHeader({ alg: 'RS256' }).setAudience('other').sign(attacker.privateKey),
    'wrong issuer': await rsa.sign({}, {}, '5m', 'https://evil.example/'),
    'no subject': await rsa.sign({ sub: '' }),
    '9 KiB token': await rsa.sign({ pad: 'x'.repeat(9 * 1024) }),
    garbage: 'eyJ.eyJ.sig',
  }
  for (const [name, token] of Object.entries(attacks)) {
    rememberSecret(token)
    const res = await b.token(token, {})
    t.equal(res.status, 401, name)
    t.equal(res.body.code, 'UNAUTHENTICATED', name)
    t.match(res.headers['www-authenticate'], /error="invalid_token"/, name)
  }
  t.equal(b.sim.stats.requests, 1, 'no refused credential reached the upstream')
})

t.test('an HMAC tenant refuses a token signed with another secret, or expired', async (t) => {
  const b = await buildBroker(t)
  t.equal((await b.token(await userJwt('u1', {}, { secret: 'another-secret-another-secret-12' }), {})).status, 401)
  t.equal((await b.token(await userJwt('u1', {}, { expiresIn: Math.floor(Date.now() / 1000) - 60 }), {})).status, 401)
  t.equal((await b.token(await userJwt('u1', {}, { issuer: 'https://unknown/' }), {})).status, 401, 'no tenant for the issuer')
})

t.test('two tenants sharing an issuer are told apart by audience', async (t) => {
  const shared = (id: string, audience: string) =>
    tenant(id, { auth: { jwt: { issuer: ISSUER, audience, secret: USER_SECRET } }, creators: { allowed: ['a1'] }, limits: { perTenantPerMinute: 1 } })
  const b = await buildBroker(t, { tenants: [shared('one', 'app-one'), shared('two', 'app-two')] })
  t.equal((await b.token(await userJwt('u1', {}, { audience: 'app-one' }), {})).status, 200)
  const two = await b.token(await userJwt('u1', {}, { audience: 'app-two' }), {})
  t.equal(two.status, 200, 'the second tenant has its own tenant window: routed by audience')
  t.equal((await b.token(await userJwt('u1', {}, { audience: 'app-three' }), {})).status, 401)
  t.equal((await b.token(await userJwt('u1'), {})).status, 401, 'ambiguous without an audience')
})

t.test('a tenant verifies with a JWKS URL', async (t) => {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true })
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }
  let fetches = 0
  const jwks = createServer((_req, res) => {
    fetches++
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }))
  })
  await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => jwks.close(() => r())))
  const url = `http://127.0.0.1:${(jwks.address() as { port: number }).port}/.well-known/jwks.json`
  const b = await buildBroker(t, {
    tenants: [tenant('jwks', { auth: { jwt: { issuer: 'https://idp/', jwksUrl: url } }, creators: { allowed: ['a1'] } })],
  })
  const sign = async (sub: string, kid = 'k1') => {
    const jwt = await new SignJWT({ sub }).setProtectedHeader({ alg: 'ES256', kid }).setIssuer('https://idp/').setExpirationTime('5m').sign(privateKey)
    rememberSecret(jwt)
    return jwt
  }
  t.equal((await b.token(await sign('u1'), {})).status, 200)
  t.equal((await b.token(await sign('u2'), {})).status, 200)
  t.equal(fetches, 1, 'the key set is cached')
  t.equal((await b.token(await sign('u3', 'unknown-kid'), {})).status, 401)
})

t.test('an unreachable JWKS is a 503 to retry, not a 401 that signs the user out', async (t) => {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true })
  const down = createServer((_req, res) => res.writeHead(500).end('down'))
  await new Promise<void>((r) => down.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => down.close(() => r())))
  const url = `http://127.0.0.1:${(down.address() as { port: number }).port}/jwks.json`
  const b = await buildBroker(t, {
    tenants: [tenant('jwks', { auth: { jwt: { issuer: 'https://idp/', jwksUrl: url } }, creators: { allowed: ['a1'] } })],
  })
  const jwt = await new SignJWT({ sub: 'u1' }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer('https://idp/').setExpirationTime('5m').sign(privateKey)
  rememberSecret(jwt)
  const res = await b.token(jwt, {})
  t.equal(res.status, 503)
  t.equal(res.body.code, 'UPSTREAM_UNAVAILABLE')
  t.equal(res.headers['retry-after'], '5')
})

t.test('a broker API key is matched only by its exact value', async (t) => {
  const { hashApiKey } = await import('../../src/auth/api-keys.js')
  const key = 'tkb_exact_key_value_0123456789'
  rememberSecret(key)
  const b = await buildBroker(t, { tenants: [tenant('k', { auth: { apiKeys: [hashApiKey(key)] }, creators: { allowed: ['a1'] } })] })
  t.equal((await b.token(key, { subject: 's' })).status, 200)
  t.equal((await b.token(`${key}x`, { subject: 's' })).status, 401)
  t.equal((await b.token(key.slice(0, -1), { subject: 's' })).status, 401)
})

t.test('a request with two Authorization fields is refused, whichever of them is valid (RFC 9110 §5.3: not a list field)', async (t) => {
  const { request } = await import('node:http')
  const b = await buildBroker(t, { config: { adminToken: 'admin-token-for-the-two-fields-test' } })
  rememberSecret('admin-token-for-the-two-fields-test')
  await b.app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = b.app.server.address() as { port: number }
  const jwt = await userJwt('u1')
  // node:http sends an array value as one field line each, as a client or proxy that added a second one would.
  const send = (method: string, path: string, authorization: string | string[]) =>
    new Promise<{ status: number; challenge: string | undefined; body: { code?: string; message?: string } }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method, path, headers: { 'content-type': 'application/json' } }, (res) => {
        let text = ''
        res.on('data', (d) => (text += String(d)))
        res.on('end', () => resolve({ status: res.statusCode as number, challenge: res.headers['www-authenticate'], body: JSON.parse(text) as { code?: string } }))
      })
      req.setHeader('authorization', authorization)
      req.on('error', reject)
      req.end(method === 'POST' ? '{}' : undefined)
    })
  t.equal((await send('POST', '/v1/token', `Bearer ${jwt}`)).status, 200, 'one field: served')
  for (const pair of [[`Bearer ${jwt}`, 'Bearer not-a-jwt'], ['Bearer not-a-jwt', `Bearer ${jwt}`], [`Bearer ${jwt}`, `Bearer ${jwt}`]]) {
    const res = await send('POST', '/v1/token', pair)
    t.equal(res.status, 401, 'two fields: refused')
    t.equal(res.body.code, 'UNAUTHENTICATED')
    t.match(res.body.message, /one Authorization header/)
    t.match(res.challenge, /error="invalid_token"/)
  }
  t.equal(b.sim.stats.requests, 1, 'only the request with one field reached the upstream')
  const admin = 'Bearer admin-token-for-the-two-fields-test'
  t.equal((await send('GET', '/admin/tenants', admin)).status, 200)
  t.equal((await send('GET', '/admin/tenants', [admin, admin])).status, 401, 'the admin API refuses two fields too')
})
