import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { hashApiKey } from '../../src/auth/api-keys.js'
import { readTenantsFile } from '../../src/config/tenants-file.js'
import { startSimulator } from '../../src/simulator/index.js'
import { overrideMacKey, sealOverride } from '../../src/state/redis-overrides.js'
import { API_KEY, configFor, ISSUER, rememberSecret, userJwt, USER_SECRET } from '../helpers/broker.js'
import { redisForTest, TEST_REDIS_URL } from '../helpers/redis.js'
import { startReplica, type Replica } from './replicas.js'

const ADMIN = 'admin-token-for-tests-0123456789'
const EVIL_KEY = 'tkb_attacker-chosen-key-0123456789'
const EVIL_SECRET = 'attacker-chosen-jwt-secret-0123456789abcdef'
const EVIL_ORIGIN = 'https://evil.example'
rememberSecret(EVIL_KEY)
rememberSecret(EVIL_SECRET)

/** Everything an attacker with write access to Redis would like a tenant to become. */
const WIDENING = {
  enabled: true,
  auth: { jwt: { issuer: ISSUER, secret: EVIL_SECRET }, apiKeys: [hashApiKey(EVIL_KEY)] },
  cors: { origins: [EVIL_ORIGIN] },
  creators: { allowed: '*', allowUnrestricted: true },
  limits: { perSubjectPerMinute: 100000 },
}

const FILE = `tenants:
  acme:
    auth:
      jwt: { issuer: ${ISSUER}, secret: ${USER_SECRET} }
    cors: { origins: ["https://app.acme.example"] }
    creators: { allowed: [a1, a2, a3] }
`

interface Setup {
  replica: Replica
  redis: Redis
  patches: string
  version: string
  /** Writes `value` as acme's stored override, bumps the version, and lets the replica look (one sync tick). */
  forge(value: string, tenantId?: string): Promise<void>
  admin(method: 'GET' | 'PATCH' | 'POST', url: string, body?: object): Promise<{ status: number; body: any }>
}

async function setup(t: Test): Promise<Setup> {
  const { redis, prefix } = await redisForTest(t)
  const sim = await startSimulator({ apiKeys: [API_KEY] })
  t.teardown(() => sim.close())
  const dir = await mkdtemp(join(tmpdir(), 'tkb-forged-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'tenants.yaml')
  await writeFile(file, FILE)
  const config = configFor(sim.url, await readTenantsFile(file, {}), { redisUrl: TEST_REDIS_URL, adminToken: ADMIN, tenantsFile: file })
  const replica = await startReplica(t, config, { keyPrefix: prefix })
  const patches = `${prefix}{overrides}:patches`
  const version = `${prefix}{overrides}:version`
  let n = 0
  return {
    replica,
    redis,
    patches,
    version,
    async forge(value, tenantId = 'acme') {
      await redis.hset(patches, tenantId, value)
      await redis.set(version, `forged-${++n}`)
      await replica.app.broker.overrideSync.tick()
    },
    async admin(method, url, body) {
      const res = await replica.app.inject({
        method,
        url,
        headers: { authorization: `Bearer ${ADMIN}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
        ...(body !== undefined && { payload: JSON.stringify(body) }),
      })
      return { status: res.statusCode, body: res.json() }
    },
  }
}

/** What an attacker would try once the forged override was in force, and after a reload. */
async function attackerGetsNothing(t: Test, s: Setup): Promise<void> {
  const app = s.replica.app
  const evilKey = await app.inject({
    method: 'POST',
    url: '/v1/token',
    headers: { authorization: `Bearer ${EVIL_KEY}`, 'content-type': 'application/json' },
    payload: JSON.stringify({ subject: 'x', allowed_creators: ['anyone'] }),
  })
  t.equal(evilKey.statusCode, 401, 'the attacker API key is refused')
  const evilJwt = await userJwt('mallory', {}, { secret: EVIL_SECRET })
  const jwtRes = await app.inject({
    method: 'POST',
    url: '/v1/token',
    headers: { authorization: `Bearer ${evilJwt}`, 'content-type': 'application/json' },
    payload: '{}',
  })
  t.equal(jwtRes.statusCode, 401, 'a JWT signed with the attacker secret is refused')
  const good = await userJwt('u1')
  const fromEvil = await app.inject({
    method: 'POST',
    url: '/v1/token',
    headers: { authorization: `Bearer ${good}`, 'content-type': 'application/json', origin: EVIL_ORIGIN },
    payload: JSON.stringify({ allowed_creators: ['a1'] }),
  })
  t.equal(fromEvil.statusCode, 403, 'the attacker origin stays refused')
  const preflight = await app.inject({
    method: 'OPTIONS',
    url: '/v1/token',
    headers: { origin: EVIL_ORIGIN, 'access-control-request-method': 'POST' },
  })
  t.equal(preflight.headers['access-control-allow-origin'], undefined, 'no CORS for the attacker origin')
  const outside = await s.replica.token('u1', { allowed_creators: ['somebody_else'] })
  t.equal(outside.status, 403, 'creators are not widened')
  const view = await s.admin('GET', '/admin/tenants/acme')
  t.match(view.body, { creators: { allowed: ['a1', 'a2', 'a3'], allowUnrestricted: false }, cors: { origins: ['https://app.acme.example'] } })
  t.equal(view.body.limits.perSubjectPerMinute, 60, 'not even the limits of a forged patch apply')
}

t.test('forged overrides written straight into Redis change nothing, before and after a reload', async (t) => {
  const s = await setup(t)
  const key = overrideMacKey({ cacheEncryptionKey: undefined, apiKey: API_KEY })
  const forgeries: Array<[string, string]> = [
    ['plain JSON (the old format)', JSON.stringify(WIDENING)],
    ['a sealed-looking value with a made-up MAC', `v1.${Buffer.alloc(32, 7).toString('base64url')}.${JSON.stringify(WIDENING)}`],
    ['a MAC made with another key', sealOverride(overrideMacKey({ cacheEncryptionKey: 'not-ours', apiKey: API_KEY }), 'acme', WIDENING as never)],
    ['a genuine MAC over a patch outside the PATCH schema', sealOverride(key, 'acme', WIDENING as never)],
    ['garbage', '\u0000\u0001{{{'],
  ]
  for (const [what, value] of forgeries) {
    await t.test(what, async (t) => {
      await s.forge(value)
      await attackerGetsNothing(t, s)
      t.equal((await s.admin('POST', '/admin/reload')).status, 200)
      await attackerGetsNothing(t, s)
    })
  }
})

t.test('a genuine patch of one tenant copied to another does not verify there', async (t) => {
  const s = await setup(t)
  const key = overrideMacKey({ cacheEncryptionKey: undefined, apiKey: API_KEY })
  await s.forge(sealOverride(key, 'other', { enabled: false }))
  t.equal((await s.replica.token('u1')).status, 200, 'the tenant is not switched off by a patch sealed for another')
})

t.test('a value overwritten with garbage keeps the override in force, and is logged once, not every tick', async (t) => {
  const s = await setup(t)
  t.equal((await s.admin('PATCH', '/admin/tenants/acme', { enabled: false })).status, 200)
  t.equal((await s.replica.token('u1')).body.code, 'TENANT_DISABLED')
  const stored = (await s.redis.hget(s.patches, 'acme')) as string
  t.match(stored, /^v1\.[A-Za-z0-9_-]{43}\.\{"enabled":false\}$/, 'what a replica stores: a MAC and the patch')

  await s.forge(`v1.${Buffer.alloc(32).toString('base64url')}.{"enabled":true}`)
  for (let i = 0; i < 3; i++) {
    await s.redis.set(s.version, `tick-${i}`)
    await s.replica.app.broker.overrideSync.tick()
  }
  t.equal((await s.replica.token('u1')).body.code, 'TENANT_DISABLED', 'an operator switch-off cannot be lifted by writing to Redis')
  const warnings = s.replica.logs.filter((l) => l.includes('ignored a shared tenant override'))
  t.equal(warnings.length, 1, 'logged once')
  t.match(JSON.parse(warnings[0] as string), { level: 40, tenant: 'acme', reason: 'MAC does not verify' })
  t.notMatch(warnings[0], /enabled/, 'the stored value itself is not logged')

  // The operator's next PATCH replaces the garbage with a genuine value.
  t.equal((await s.admin('PATCH', '/admin/tenants/acme', { enabled: true })).status, 200)
  t.equal((await s.replica.token('u1')).status, 200)
})
