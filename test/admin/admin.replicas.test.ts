import t, { type Test } from 'tap'
import { startSimulator } from '../../src/simulator/index.js'
import { acme, API_KEY, configFor } from '../helpers/broker.js'
import { redisForTest, TEST_REDIS_URL } from '../helpers/redis.js'
import { startReplica } from '../state/replicas.js'

const ADMIN = 'admin-token-for-tests-0123456789'

/** Two replicas with an admin token on one Redis namespace, and a way to start more. */
async function replicas(t: Test) {
  const { prefix } = await redisForTest(t)
  const sim = await startSimulator({ apiKeys: [API_KEY] })
  t.teardown(() => sim.close())
  const config = configFor(sim.url, [acme()], { redisUrl: TEST_REDIS_URL, adminToken: ADMIN })
  const replica = () => startReplica(t, config, { keyPrefix: prefix })
  return { a: await replica(), b: await replica(), replica }
}

t.test('a PATCH on one replica is applied by the others through Redis within 5 s', async (t) => {
  const { a, b, replica } = await replicas(t)
  t.equal((await b.token('u1')).headers['ratelimit-limit'], '60')

  const patch = await a.app.inject({
    method: 'PATCH',
    url: '/admin/tenants/acme',
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    payload: JSON.stringify({ limits: { perSubjectPerMinute: 7 }, token: { expireAfter: { max: 300 } } }),
  })
  t.equal(patch.statusCode, 200)
  const started = Date.now()
  let seen = ''
  while (Date.now() - started < 5000) {
    const view = await b.app.inject({ url: '/admin/tenants/acme', headers: { authorization: `Bearer ${ADMIN}` } })
    seen = String(view.json().limits.perSubjectPerMinute)
    if (seen === '7') break
    await new Promise((r) => setTimeout(r, 100))
  }
  t.equal(seen, '7', `replica b applied the patch after ${Date.now() - started} ms`)
  const res = await b.token('u2', { allowed_creators: ['a1'], expire_after: 3600 })
  t.equal(res.headers['ratelimit-limit'], '7', 'the new limit is in force on the other replica')
  t.equal(res.body.data.expire_after, 300, 'and the new lifetime')

  const c = await replica()
  const late = await c.app.inject({ url: '/admin/tenants/acme', headers: { authorization: `Bearer ${ADMIN}` } })
  t.equal(late.json().limits.perSubjectPerMinute, 7, 'a replica started later adopts it before serving')
})

t.test('two operators patching one tenant on two replicas at once never undo each other', async (t) => {
  const { a, b, replica } = await replicas(t)
  const patch = (r: typeof a, body: object) =>
    r.app.inject({
      method: 'PATCH',
      url: '/admin/tenants/acme',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      payload: JSON.stringify(body),
    })
  const [one, two] = await Promise.all([patch(a, { limits: { perSubjectPerMinute: 7 } }), patch(b, { limits: { perTenantPerMinute: 700 } })])
  t.equal(one.statusCode, 200)
  t.equal(two.statusCode, 200)
  for (const r of [a, b]) {
    const deadline = Date.now() + 5000
    let limits: Record<string, unknown> = {}
    while (Date.now() < deadline) {
      limits = (await r.app.inject({ url: '/admin/tenants/acme', headers: { authorization: `Bearer ${ADMIN}` } })).json().limits
      if (limits.perSubjectPerMinute === 7 && limits.perTenantPerMinute === 700) break
      await new Promise((res) => setTimeout(res, 100))
    }
    t.match(limits, { perSubjectPerMinute: 7, perTenantPerMinute: 700 }, 'both changes are in force')
  }
})
