import { createHmac } from 'node:crypto'
import fc from 'fast-check'
import t from 'tap'
import { acme, buildBroker, ISSUER, rememberSecret, tenant, USER_SECRET } from '../helpers/broker.js'

const OTHER_ISSUER = 'https://other.example/'
const OTHER_SECRET = 'other-tenant-secret-0123456789abcdef'
const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url')

/** HS256 by hand, so any header and payload can be signed with the right key: only the trick itself can make it fail. */
function sign(header: object, payload: unknown, secret = USER_SECRET, rawPayload = false): string {
  const h = b64(header)
  const p = rawPayload ? String(payload) : b64(payload)
  const sig = createHmac('sha256', secret).update(`${h}.${p}`).digest('base64url')
  return `${h}.${p}.${sig}`
}

const now = () => Math.floor(Date.now() / 1000)
const good = () => ({ sub: 'u1', iss: ISSUER, iat: now(), exp: now() + 300 })

/** Header tricks, each on an otherwise valid token signed with the tenant's own secret. */
const headerTrick = fc.oneof(
  fc.record({ alg: fc.constant('HS256'), kid: fc.oneof(fc.constantFrom('../../../../dev/null', "' OR 1=1 --", '', 'x'.repeat(2000), '\u0000'), fc.string()), crit: fc.constant(['kid']) }),
  fc.record({ alg: fc.constant('HS256'), crit: fc.oneof(fc.constant(['exp']), fc.array(fc.string({ minLength: 1 }), { minLength: 1, maxLength: 3 })) }),
  fc.record({ alg: fc.constant('HS256'), b64: fc.constant(false), crit: fc.constant(['b64']) }),
  fc.record({ alg: fc.constantFrom('none', 'None', 'NONE', 'HS512', 'RS256', 'ES256', 'hs256', '') }),
  fc.record({ alg: fc.constant('HS256'), jku: fc.constant('http://127.0.0.1:1/jwks') }),
  fc.record({ alg: fc.constant('HS256'), jwk: fc.constant({ kty: 'oct', k: b64(USER_SECRET) }) }),
  fc.record({ alg: fc.constant('HS256'), x5u: fc.constant('http://127.0.0.1:1/x5u') }),
)

const absurdTime = fc.oneof(
  fc.constantFrom(Number.MAX_SAFE_INTEGER * 10, -1, 0, 1e300, -1e300),
  fc.integer({ min: -(2 ** 31), max: now() - 60 }),
  // RFC 7519 lets a NumericDate have a fraction: only fractions that are expired, not finite or past 2^53 must fail.
  fc.double({ noNaN: false }).filter((d) => !Number.isInteger(d) && !(d > now() && d < 2 ** 53)),
)
const numericString = fc.integer({ min: now() + 60, max: now() + 10 ** 9 }).map(String)

/** Claim tricks on a token with a fine header. */
const claimTrick = fc.oneof(
  fc.constant({ drop: 'exp' }),
  fc.constant({ drop: 'sub' }),
  absurdTime.map((exp) => ({ set: { exp } })), // expired, or not a finite integer in the past/future
  numericString.map((exp) => ({ set: { exp } })),
  fc.integer({ min: now() + 3600, max: now() + 10 ** 9 }).map((nbf) => ({ set: { nbf } })),
  numericString.map((nbf) => ({ set: { nbf } })),
  fc.oneof(fc.string(), fc.constantFrom('1700000000', NaN)).map((iat) => ({ set: { iat } })),
  fc.constantFrom(OTHER_ISSUER, 'https://auth.test.example', `${ISSUER} `, 'HTTPS://AUTH.TEST.EXAMPLE/', '').map((iss) => ({ set: { iss } })),
  fc.oneof(fc.integer(), fc.constant(null), fc.constant(['x'])).map((iss) => ({ set: { iss } })),
  fc.oneof(fc.constant(''), fc.constant('x'.repeat(300)), fc.constant({}), fc.constant(true)).map((sub) => ({ set: { sub } })),
)

t.test('never a 200 for a token that should fail: header tricks, claim tricks, nested JWS, another tenant', async (t) => {
  const b = await buildBroker(t, {
    tenants: [acme(), tenant('other', { auth: { jwt: { issuer: OTHER_ISSUER, secret: OTHER_SECRET } }, creators: { allowed: ['a1'] } })],
  })
  rememberSecret(OTHER_SECRET)
  const expectRefused = async (token: string, what: unknown) => {
    rememberSecret(token)
    const res = await b.token(token, { allowed_creators: ['a1'] })
    if (res.status !== 401) throw new Error(`${res.status} for ${JSON.stringify(what).slice(0, 300)}`)
    if (res.body.code !== 'UNAUTHENTICATED' || !/error="invalid_token"/.test(String(res.headers['www-authenticate']))) throw new Error('not the contract 401')
  }

  await fc.assert(
    fc.asyncProperty(headerTrick, async (header) => {
      const payload = good()
      const token = 'b64' in header && header.b64 === false ? sign(header, JSON.stringify(payload), USER_SECRET, true) : sign(header, payload)
      await expectRefused(token, header)
    }),
    { numRuns: 120 },
  )
  await fc.assert(
    fc.asyncProperty(claimTrick, async (trick) => {
      const payload: Record<string, unknown> = good()
      if ('drop' in trick) delete payload[trick.drop as string]
      else Object.assign(payload, trick.set)
      await expectRefused(sign({ alg: 'HS256', typ: 'JWT' }, payload), trick)
    }),
    { numRuns: 200 },
  )
  await fc.assert(
    fc.asyncProperty(fc.constantFrom('JWT', 'jwt', undefined), fc.boolean(), async (cty, signedByOther) => {
      // Nested JWS: the payload is itself a token, valid on its own; the outer one carries no claims.
      const inner = sign({ alg: 'HS256' }, good())
      const outer = sign({ alg: 'HS256', ...(cty !== undefined && { cty }) }, inner, signedByOther ? OTHER_SECRET : USER_SECRET, true)
      await expectRefused(outer, { nested: cty })
    }),
    { numRuns: 12 },
  )
  await fc.assert(
    fc.asyncProperty(fc.boolean(), fc.integer({ min: 60, max: 3600 }), async (claimOther, ttl) => {
      // Signed with one tenant's secret, naming the other's issuer: routed by issuer, verified with that tenant's key.
      const payload = { sub: 'u1', iss: claimOther ? OTHER_ISSUER : ISSUER, iat: now(), exp: now() + ttl }
      await expectRefused(sign({ alg: 'HS256' }, payload, claimOther ? USER_SECRET : OTHER_SECRET), { crossTenant: claimOther })
    }),
    { numRuns: 20 },
  )
  t.equal(b.sim.stats.requests, 0, 'no refused token ever reached the upstream')

  // The oracle is not vacuous: the same hand-made tokens, untouched, pass.
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 60, max: 3600 }), fc.constantFrom('u1', 'u2', 12345), async (ttl, sub) => {
      const token = sign({ alg: 'HS256', typ: 'JWT' }, { ...good(), sub, exp: now() + ttl })
      rememberSecret(token)
      const res = await b.token(token, { allowed_creators: ['a1'] })
      return res.status === 200
    }),
    { numRuns: 10 },
  )
})
