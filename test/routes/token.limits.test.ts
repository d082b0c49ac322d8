import t from 'tap'
import { hashApiKey } from '../../src/auth/api-keys.js'
import { acme, buildBroker, rememberSecret, tenant, userJwt } from '../helpers/broker.js'

t.test('invalid requests of a user count toward the per-subject limit, whatever is wrong with them', async (t) => {
  const b = await buildBroker(t, { tenants: [acme({ limits: { perSubjectPerMinute: 3 } })] })
  const jwt = await userJwt('u1')
  const bad = [
    { unknown_field: 1 },
    { allowed_creators: ['not allowed!'] },
    '{"allowed_creators": [', // not JSON: refused before the handler, counted all the same
  ]
  for (const body of bad) t.equal((await b.token(jwt, body)).status, 400)
  const valid = await b.token(jwt, { allowed_creators: ['a1'] })
  t.equal(valid.status, 429, 'the limit was spent by invalid requests')
  t.equal(valid.body.code, 'RATE_LIMITED')
  t.ok(Number(valid.headers['retry-after']) >= 1)
  const more = await b.token(jwt, { unknown_field: 1 })
  t.equal(more.status, 429, 'over the limit, an invalid request is refused by the limit first')
  t.equal((await b.token(await userJwt('u2'), { allowed_creators: ['a1'] })).status, 200, 'another subject is unaffected')
  t.equal(b.sim.stats.requests, 1)
})

t.test('invalid requests count toward the tenant limit too', async (t) => {
  const b = await buildBroker(t, { tenants: [acme({ limits: { perSubjectPerMinute: 100, perTenantPerMinute: 4 } })] })
  for (const sub of ['u1', 'u2', 'u3', 'u4']) t.equal((await b.token(await userJwt(sub), { nope: true })).status, 400)
  const res = await b.token(await userJwt('u5'), { allowed_creators: ['a1'] })
  t.equal(res.status, 429)
  t.match(res.body.message, /tenant/)
})

t.test('API-key mode: an invalid body counts under its subject where it names one, else under the key itself', async (t) => {
  const key = 'tkb_limits-test-key-0123456789'
  rememberSecret(key)
  const b = await buildBroker(t, {
    tenants: [tenant('backend', { auth: { apiKeys: [hashApiKey(key)] }, creators: { allowed: ['a1'] }, limits: { perSubjectPerMinute: 2 } })],
  })
  // Two invalid bodies naming subject s1: s1's limit is spent.
  for (let i = 0; i < 2; i++) t.equal((await b.token(key, { subject: 's1', allowed_creators: ['NOT VALID'] })).status, 400)
  t.equal((await b.token(key, { subject: 's1', allowed_creators: ['a1'] })).status, 429, 's1 is over its limit')
  // Bodies without a usable subject (missing, wrong type, not JSON) spend the key's own bucket.
  t.equal((await b.token(key, {})).status, 400)
  t.equal((await b.token(key, { subject: 42 })).status, 400)
  t.equal((await b.token(key, { allowed_creators: ['a1'] })).status, 429, 'the key has spent its bucket for subject-less requests')
  t.equal((await b.token(key, { subject: 's2', allowed_creators: ['a1'] })).status, 200, 'a real subject is not blocked by them')
})
