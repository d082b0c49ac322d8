import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'
import t, { type Test } from 'tap'
import { startSimulator } from '../../src/simulator/index.js'
import { readTenantsFile } from '../../src/config/tenants-file.js'
import { createHash } from 'node:crypto'
import { API_KEY, buildBroker, ISSUER, rememberSecret, userJwt, USER_SECRET } from '../helpers/broker.js'
import { startBrokerProcess } from '../helpers/process.js'

const ADMIN = 'admin-token-for-tests-0123456789'

const file = (creators: string, extra = '') => `tenants:
  acme:
    auth:
      jwt:
        issuer: ${ISSUER}
        secret: \${ACME_SECRET}
    creators:
      allowed: [${creators}]
    token:
      expireAfter: { default: 600, max: 3600 }
${extra}`

async function tempFile(t: Test, text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tkb-reload-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'tenants.yaml')
  await writeFile(path, text)
  return path
}

t.test('POST /admin/reload puts a new file in force; a broken one keeps the old and names the field', async (t) => {
  const env = { ACME_SECRET: USER_SECRET }
  const path = await tempFile(t, file('a1, a2'))
  const b = await buildBroker(t, {
    tenants: await readTenantsFile(path, env),
    config: { adminToken: ADMIN, tenantsFile: path },
    deps: { env },
  })
  const reload = () => b.app.inject({ method: 'POST', url: '/admin/reload', headers: { authorization: `Bearer ${ADMIN}` } })
  const jwt = await userJwt('u1')
  const cached = await b.token(jwt, { allowed_creators: ['a2'] })
  t.equal(cached.status, 200)
  await b.app.inject({
    method: 'PATCH',
    url: '/admin/tenants/acme',
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    payload: JSON.stringify({ limits: { perSubjectPerMinute: 7 } }),
  })

  await writeFile(path, file('a1, a3'))
  const ok = await reload()
  t.equal(ok.statusCode, 200)
  t.same(ok.json(), { status: 'reloaded', tenants: ['acme'] })
  t.equal((await b.token(jwt, { allowed_creators: ['a3'] })).status, 200, 'new creator allowed')
  const narrowed = await b.token(jwt, { allowed_creators: ['a2'] })
  t.equal(narrowed.status, 403, 'a cached token is not served beyond the narrowed policy')
  t.equal(narrowed.body.code, 'CREATOR_NOT_ALLOWED')
  t.equal(narrowed.headers['ratelimit-limit'], '7', 'operator overrides survive a reload')

  await writeFile(path, file('a1', '    limits: { perTenantPerMinute: lots }\n'))
  const bad = await reload()
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().code, 'BAD_REQUEST')
  t.match(bad.json().message, /tenants\.acme\.limits\.perTenantPerMinute: expected number/)
  t.equal((await b.token(jwt, { allowed_creators: ['a3'] })).status, 200, 'the running config is kept')

  // A file that is valid alone but not with an operator's override in force: the refusal says the override is part of it.
  t.equal((await b.app.inject({ method: 'PATCH', url: '/admin/tenants/acme', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, payload: '{"token":{"expireAfter":{"default":1000}}}' })).statusCode, 200)
  await writeFile(path, file('a1, a3').replace('{ default: 600, max: 3600 }', '{ default: 60, max: 120 }'))
  const clash = await reload()
  t.equal(clash.statusCode, 400)
  t.match(clash.json().message, /tenants\.acme\.token\.expireAfter\.default: .*; tenants\.acme: the file's tenant with the admin override \{"limits":\{"perSubjectPerMinute":7\},"token":\{"expireAfter":\{"default":1000\}\}\} applied/)
  t.equal((await b.token(jwt, { allowed_creators: ['a3'] })).status, 200, 'the running config is kept')
  t.equal((await b.app.inject({ method: 'PATCH', url: '/admin/tenants/acme', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, payload: '{"token":null}' })).statusCode, 200)
  t.equal((await reload()).statusCode, 200, 'with the override of the field dropped, the file applies')

  await writeFile(path, file('a1, a3').replace('${ACME_SECRET}', 'a-rotated-secret-a-rotated-secret'))
  t.equal((await reload()).statusCode, 200)
  t.equal((await b.token(await userJwt('u2'), { allowed_creators: ['a1'] })).status, 401, 'a rotated secret applies to new requests')
  const rotated = await userJwt('u2', {}, { secret: 'a-rotated-secret-a-rotated-secret' })
  t.equal((await b.token(rotated, { allowed_creators: ['a1'] })).status, 200)
})

t.test('SIGHUP re-reads the tenants file of a running server; SIGTERM exits 0', async (t) => {
  const sim = await startSimulator({ apiKeys: [API_KEY] })
  t.teardown(() => sim.close())
  const path = await tempFile(t, file('a1'))
  const broker = await startBrokerProcess(t, {
    TIKTOOLS_API_KEY: API_KEY,
    UPSTREAM_URL: sim.url,
    TENANTS_FILE: path,
    ACME_SECRET: USER_SECRET,
  })
  const mint = async (creator: string) =>
    fetch(`${broker.url}/v1/token`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await userJwt('u1')}`, 'content-type': 'application/json' },
      body: JSON.stringify({ allowed_creators: [creator] }),
    })
  t.equal((await mint('b2')).status, 403)
  await writeFile(path, file('a1, b2'))
  broker.child.kill('SIGHUP')
  const deadline = Date.now() + 5000
  while (!broker.output().includes('tenants reloaded') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25))
  t.equal((await mint('b2')).status, 200, 'the reloaded file is in force')
  t.match(broker.output(), /"event":"admin\.reload"[^\n]*"actor":"SIGHUP"/, 'the audit line names the signal, not the admin token')

  await writeFile(path, 'tenants: [')
  broker.child.kill('SIGHUP')
  while (!broker.output().includes('reload refused') && Date.now() < deadline + 5000) await new Promise((r) => setTimeout(r, 25))
  t.match(broker.output(), /not valid YAML or JSON/)
  t.equal((await mint('b2')).status, 200, 'a broken file keeps the running config')

  broker.child.kill('SIGTERM')
  const [code] = (await once(broker.child, 'exit')) as [number | null]
  t.equal(code, 0, 'graceful shutdown exits 0')
  t.notMatch(broker.output(), API_KEY)
  t.notMatch(broker.output(), USER_SECRET)
})

t.test('a bad configuration stops start-up with one message naming the field, exit 1', async (t) => {
  const path = await tempFile(t, file('a1', '    limits: { perSubjectPerMinute: "x" }\n'))
  await t.rejects(
    startBrokerProcess(t, { TIKTOOLS_API_KEY: API_KEY, TENANTS_FILE: path, ACME_SECRET: 's' }),
    /exited early \(1\)[\s\S]*tenants\.acme\.limits\.perSubjectPerMinute: expected number/,
  )
  await t.rejects(startBrokerProcess(t, { AUTH_JWT_SECRET: 's' }), /exited early \(1\)[\s\S]*TIKTOOLS_API_KEY: required/)
})

t.test('SIGTERM lets an in-flight request finish, then exits 0', async (t) => {
  const sim = await startSimulator({ apiKeys: [API_KEY] })
  t.teardown(() => sim.close())
  const path = await tempFile(t, file('a1'))
  const broker = await startBrokerProcess(t, { TIKTOOLS_API_KEY: API_KEY, UPSTREAM_URL: sim.url, TENANTS_FILE: path, ACME_SECRET: USER_SECRET })
  sim.setFaults({ latencyMs: 600 })
  const inFlight = fetch(`${broker.url}/v1/token`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await userJwt('u1')}`, 'content-type': 'application/json' },
    body: JSON.stringify({ allowed_creators: ['a1'] }),
  })
  while (sim.stats.requests === 0) await new Promise((r) => setTimeout(r, 10))
  broker.child.kill('SIGTERM')
  const res = await inFlight
  t.equal(res.status, 200, 'the request that was running when SIGTERM came is answered')
  t.equal(await broker.exited, 0)
})

t.test('a broker API key taken out of the file stops working at the reload, though it was just used', async (t) => {
  const env = { ACME_SECRET: USER_SECRET }
  const key = 'a-broker-api-key-for-reload-tests-0123'
  const hash = `sha256:${createHash('sha256').update(key).digest('hex')}`
  const withKey = file('a1').replace('        secret: ${ACME_SECRET}\n', `        secret: \${ACME_SECRET}\n      apiKeys: ["${hash}"]\n`)
  const path = await tempFile(t, withKey)
  const b = await buildBroker(t, { tenants: await readTenantsFile(path, env), config: { adminToken: ADMIN, tenantsFile: path }, deps: { env } })
  rememberSecret(key)
  for (let i = 0; i < 2; i++) t.equal((await b.token(key, { subject: 'backend-user' })).status, 200, 'the key works (and is remembered)')
  await writeFile(path, file('a1'))
  t.equal((await b.app.inject({ method: 'POST', url: '/admin/reload', headers: { authorization: `Bearer ${ADMIN}` } })).statusCode, 200)
  const after = await b.token(key, { subject: 'backend-user' })
  t.equal(after.status, 401, 'refused at once')
  t.equal(after.body.code, 'UNAUTHENTICATED')
})
