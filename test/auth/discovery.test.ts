import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair, jwtVerify, SignJWT, type CryptoKey, type JWK } from 'jose'
import t, { type Test } from 'tap'
import { discoveryUrl, DiscoveryUnavailableError, OidcDiscovery } from '../../src/auth/oidc-discovery.js'

type Handler = (req: IncomingMessage, res: ServerResponse, base: string) => void

/** A hand-written identity provider: what its discovery document says is up to each test. */
async function idp(t: Test, handler: Handler) {
  const seen: string[] = []
  let current = handler
  const server = createServer((req, res) => {
    seen.push(req.url ?? '')
    current(req, res, base)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  t.teardown(() => {
    server.closeAllConnections()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return { base, seen, set: (h: Handler) => (current = h) }
}

const json = (res: ServerResponse, body: unknown, status = 200) =>
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))

async function keyPair(kid: string): Promise<{ privateKey: CryptoKey; jwk: JWK }> {
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true })
  return { privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } }
}

/** A provider whose document names `issuer` and whose key set holds `keys()`. */
function provider(issuer: (base: string) => string, keys: () => JWK[]): Handler {
  return (req, res, base) => {
    if (req.url === '/tenant/.well-known/openid-configuration') return json(res, { issuer: issuer(base), jwks_uri: `${base}/keys` })
    if (req.url === '/keys') return json(res, { keys: keys() })
    json(res, { error: 'not found' }, 404)
  }
}

const sign = (key: { privateKey: CryptoKey; jwk: JWK }, issuer: string) =>
  new SignJWT({ sub: 'u1' }).setProtectedHeader({ alg: 'ES256', kid: key.jwk.kid as string }).setIssuer(issuer).setExpirationTime('5m').sign(key.privateKey)

function clock(start = 1_000_000) {
  let now = start
  return { now: () => now, advance: (ms: number) => (now += ms) }
}

t.test('the document URL drops a trailing slash of the issuer first', async (t) => {
  t.equal(discoveryUrl('https://tenant.auth0.com/'), 'https://tenant.auth0.com/.well-known/openid-configuration')
  t.equal(discoveryUrl('https://idp.example/realms/acme'), 'https://idp.example/realms/acme/.well-known/openid-configuration')
})

t.test('keys come from the jwks_uri of a document naming exactly the configured issuer', async (t) => {
  const key = await keyPair('k1')
  const server = await idp(t, provider((base) => `${base}/tenant/`, () => [key.jwk]))
  const issuer = `${server.base}/tenant/`
  const d = new OidcDiscovery(issuer)
  const { payload } = await jwtVerify(await sign(key, issuer), d.getKey, { issuer })
  t.equal(payload.sub, 'u1')
  await jwtVerify(await sign(key, issuer), d.getKey, { issuer })
  t.same(server.seen, ['/tenant/.well-known/openid-configuration', '/keys'], 'fetched once, then cached')
})

t.test('a document naming another issuer is refused: unavailable, never trusted', async (t) => {
  const key = await keyPair('k1')
  // The configured issuer has a trailing slash; the document's has none: not the same issuer.
  const server = await idp(t, provider((base) => `${base}/tenant`, () => [key.jwk]))
  const issuer = `${server.base}/tenant/`
  const warnings: string[] = []
  const log = { warn: (f: object, m: string) => warnings.push(`${m} ${JSON.stringify(f)}`), info: () => {} }
  const d = new OidcDiscovery(issuer, { log })
  const err = await jwtVerify(await sign(key, issuer), d.getKey).catch((e: unknown) => e)
  t.type(err, DiscoveryUnavailableError)
  t.equal((err as DiscoveryUnavailableError).retryAfterSeconds, 1)
  t.match(warnings, [/discovery failed.*names issuer/])
  t.notOk(server.seen.includes('/keys'), 'the key set of an unverified document is never fetched')
})

t.test('unusable documents are unavailable with a reason in the log', async (t) => {
  const cases: Array<[string, Handler, RegExp]> = [
    ['HTTP 500', (_q, res) => json(res, {}, 500), /HTTP 500/],
    ['not JSON', (_q, res) => res.writeHead(200).end('<html>'), /not JSON/],
    ['no jwks_uri', (_q, res, base) => json(res, { issuer: `${base}/tenant` }), /no usable jwks_uri/],
    ['a redirect', (_q, res) => res.writeHead(302, { location: 'http://127.0.0.1:1/' }).end(), /fetch failed/],
    ['too large', (_q, res) => res.writeHead(200).end(`"${'x'.repeat(300 * 1024)}"`), /larger than/],
  ]
  for (const [name, handler, reason] of cases) {
    const server = await idp(t, handler)
    const warnings: string[] = []
    const d = new OidcDiscovery(`${server.base}/tenant`, { log: { warn: (f) => warnings.push(JSON.stringify(f)), info: () => {} } })
    await t.rejects(Promise.resolve(d.getKey({ alg: 'ES256' }, { payload: '', signature: '' })), DiscoveryUnavailableError, name)
    t.match(warnings, [reason], name)
  }
})

t.test('a hanging provider times out', async (t) => {
  const server = await idp(t, () => {})
  const d = new OidcDiscovery(`${server.base}/tenant`, { timeoutMs: 100 })
  await t.rejects(Promise.resolve(d.getKey({ alg: 'ES256' }, { payload: '', signature: '' })), DiscoveryUnavailableError)
})

t.test('an unreachable provider is retried after a growing backoff; concurrent callers share one attempt', async (t) => {
  const key = await keyPair('k1')
  const ok = provider((base) => `${base}/tenant`, () => [key.jwk])
  const server = await idp(t, (req) => req.socket.destroy())
  const issuer = `${server.base}/tenant`
  const c = clock()
  const d = new OidcDiscovery(issuer, { now: c.now, maxRetryMs: 4000 })
  const token = await sign(key, issuer)
  const both = await Promise.allSettled([jwtVerify(token, d.getKey), jwtVerify(token, d.getKey)])
  t.same(both.map((r) => r.status), ['rejected', 'rejected'])
  t.equal(server.seen.length, 1, 'one attempt for both callers')

  server.set(ok)
  const waiting = await jwtVerify(token, d.getKey).catch((e: DiscoveryUnavailableError) => e)
  t.equal((waiting as DiscoveryUnavailableError).retryAfterSeconds, 1, 'within the backoff: refused without a fetch')
  t.equal(server.seen.length, 1)

  server.set((req) => req.socket.destroy())
  c.advance(1000)
  const second = await jwtVerify(token, d.getKey).catch((e: DiscoveryUnavailableError) => e)
  t.equal((second as DiscoveryUnavailableError).retryAfterSeconds, 2, 'the backoff doubles')
  c.advance(2000)
  const third = await jwtVerify(token, d.getKey).catch((e: DiscoveryUnavailableError) => e)
  t.equal((third as DiscoveryUnavailableError).retryAfterSeconds, 4)
  c.advance(4000)
  const capped = await jwtVerify(token, d.getKey).catch((e: DiscoveryUnavailableError) => e)
  t.equal((capped as DiscoveryUnavailableError).retryAfterSeconds, 4, 'capped at maxRetryMs')

  server.set(ok)
  c.advance(4000)
  t.equal((await jwtVerify(token, d.getKey)).payload.sub, 'u1', 'retried once the backoff is over')
})

t.test('the document and keys are refreshed in the background; a failed refresh keeps the last good keys', async (t) => {
  const k1 = await keyPair('k1')
  const k2 = await keyPair('k2')
  let keys = [k1.jwk]
  const ok = provider((base) => `${base}/tenant`, () => keys)
  const server = await idp(t, ok)
  const issuer = `${server.base}/tenant`
  const c = clock()
  const d = new OidcDiscovery(issuer, { now: c.now, refreshMs: 60_000 })
  await jwtVerify(await sign(k1, issuer), d.getKey)
  t.equal(server.seen.length, 2)

  // Published ahead of use, as providers do: picked up by the refresh, the request never waits for it.
  keys = [k2.jwk, k1.jwk]
  c.advance(60_000)
  // The provider holds the refresh until released: the request that started it must not wait for it.
  let release!: () => void
  const held = new Promise<void>((resolve) => (release = resolve))
  server.set((req, res, base) => void held.then(() => ok(req, res, base)))
  t.equal((await jwtVerify(await sign(k1, issuer), d.getKey)).payload.sub, 'u1', 'answered while the refresh is held')
  release()
  server.set(ok)
  await d.idle()
  t.equal(server.seen.length, 4, 'document and key set fetched again')
  t.equal((await jwtVerify(await sign(k2, issuer), d.getKey)).payload.sub, 'u1', 'the new key is known')

  server.set((req) => req.socket.destroy())
  c.advance(60_000)
  await jwtVerify(await sign(k2, issuer), d.getKey)
  await d.idle()
  t.equal((await jwtVerify(await sign(k2, issuer), d.getKey)).payload.sub, 'u1', 'provider down: last good keys still verify')
})

t.test('an unknown kid refetches the key set at most once per cooldown', async (t) => {
  const k1 = await keyPair('k1')
  const k2 = await keyPair('k2')
  let keys = [k1.jwk]
  const server = await idp(t, provider((base) => `${base}/tenant`, () => keys))
  const issuer = `${server.base}/tenant`
  const c = clock()
  const d = new OidcDiscovery(issuer, { now: c.now, keyMissCooldownMs: 30_000 })
  await jwtVerify(await sign(k1, issuer), d.getKey)
  keys = [k2.jwk, k1.jwk]
  await t.rejects(jwtVerify(await sign(k2, issuer), d.getKey), { code: 'ERR_JWKS_NO_MATCHING_KEY' }, 'keys were just fetched')
  t.equal(server.seen.filter((u) => u === '/keys').length, 1)
  c.advance(30_000)
  t.equal((await jwtVerify(await sign(k2, issuer), d.getKey)).payload.sub, 'u1', 'a rotated key is found')
  t.equal(server.seen.filter((u) => u === '/keys').length, 2)
  const stranger = await keyPair('k9')
  await t.rejects(jwtVerify(await sign(stranger, issuer), d.getKey), { code: 'ERR_JWKS_NO_MATCHING_KEY' })
  t.equal(server.seen.filter((u) => u === '/keys').length, 2, 'a made-up kid right after does not fetch again')
})
