import { SignJWT } from 'jose'
import t from 'tap'
import { acme, buildBroker, ISSUER, rememberSecret, USER_SECRET } from '../helpers/broker.js'

const key = new TextEncoder().encode(USER_SECRET)

t.test('a user JWT without exp is refused, however valid otherwise', async (t) => {
  const b = await buildBroker(t, { tenants: [acme()] })
  const noExp = await new SignJWT({ sub: 'u1' }).setProtectedHeader({ alg: 'HS256' }).setIssuer(ISSUER).setIssuedAt().sign(key)
  rememberSecret(noExp)
  const res = await b.token(noExp, { allowed_creators: ['a1'] })
  t.equal(res.status, 401)
  t.equal(res.body.code, 'UNAUTHENTICATED')
  t.match(res.headers['www-authenticate'], /error="invalid_token"/)
  t.equal(b.sim.stats.requests, 0, 'nothing minted')
})

t.test('the verified-token memo never outlives exp', async (t) => {
  // No clock tolerance, so the wait is short: the memo and jose read the real clock, which a fake one would not move.
  const b = await buildBroker(t, { tenants: [acme({ auth: { jwt: { issuer: ISSUER, secret: USER_SECRET, clockToleranceSeconds: 0 } } })] })
  // At least a whole second of life left (1–2 s): with floor(now) + 1 it could be a few ms, and a slow first
  // request on a busy CI machine then met an already expired token.
  const exp = Math.ceil(Date.now() / 1000) + 1
  const short = await new SignJWT({ sub: 'u1' }).setProtectedHeader({ alg: 'HS256' }).setIssuer(ISSUER).setExpirationTime(exp).sign(key)
  rememberSecret(short)
  t.equal((await b.token(short, { allowed_creators: ['a1'] })).status, 200, 'valid now (and remembered)')
  await new Promise((resolve) => setTimeout(resolve, exp * 1000 - Date.now() + 50))
  t.equal((await b.token(short, { allowed_creators: ['a1'] })).status, 401, 'refused once expired, memo or not')
})

t.test('an exp past 2^53 (a token that never expires) is refused like no exp', async (t) => {
  const b = await buildBroker(t, { tenants: [acme()] })
  for (const exp of [1e300, Number.MAX_SAFE_INTEGER * 10]) {
    const token = await new SignJWT({ sub: 'u1' }).setProtectedHeader({ alg: 'HS256' }).setIssuer(ISSUER).setExpirationTime(exp).sign(key)
    rememberSecret(token)
    t.equal((await b.token(token, { allowed_creators: ['a1'] })).status, 401, `exp ${exp}`)
  }
})
