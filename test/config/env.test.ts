import t from 'tap'
import { ConfigError, loadConfig } from '../../src/config/index.js'
import { hashApiKey } from '../../src/auth/api-keys.js'

const base = { TIKTOOLS_API_KEY: 'key', AUTH_JWT_SECRET: 'a-secret' }

async function problems(env: NodeJS.ProcessEnv): Promise<string[]> {
  try {
    await loadConfig(env)
  } catch (err) {
    if (err instanceof ConfigError) return err.issues
    throw err
  }
  return []
}

t.test('defaults from the contract', async (t) => {
  const c = await loadConfig(base)
  t.same(c.upstream, { url: 'https://api.tik.tools', apiKey: 'key', timeoutMs: 5000 })
  t.same(c.server, { host: '0.0.0.0', port: 8080 })
  t.equal(c.logLevel, 'info')
  t.equal(c.redisUrl, undefined)
  const [d] = c.tenants
  t.equal(d?.id, 'default')
  t.match(d, {
    enabled: true,
    creators: { allowed: [], allowUnrestricted: false },
    token: { expireAfter: { default: 600, max: 3600 }, maxWebsockets: { default: 1, max: 1 }, minRemaining: 60, share: 'subject' },
    limits: { perSubjectPerMinute: 60, perTenantPerMinute: 6000 },
  })
  t.equal(d?.limits.upstreamMintsPerMinute, undefined)
})

t.test('the single default tenant from AUTH_*, CORS_ORIGINS, ALLOWED_CREATORS, BROKER_API_KEYS', async (t) => {
  const hash = hashApiKey('k1')
  const c = await loadConfig({
    ...base,
    AUTH_ISSUER: 'https://idp/',
    AUTH_AUDIENCE: 'broker',
    AUTH_CREATORS_CLAIM: 'creators',
    ALLOWED_CREATORS: '@Streamer1, streamer2',
    CORS_ORIGINS: 'https://app.example, http://localhost:3000/',
    BROKER_API_KEYS: hash,
    UPSTREAM_URL: 'http://127.0.0.1:8090/',
    PORT: '9000',
    UPSTREAM_TIMEOUT_MS: '',
  })
  const [d] = c.tenants
  t.same(d?.creators.allowed, ['streamer1', 'streamer2'])
  t.same(d?.cors.origins, ['https://app.example', 'http://localhost:3000'])
  t.same(d?.auth.apiKeys, [hash])
  const upper = await loadConfig({ ...base, BROKER_API_KEYS: `sha256:${hash.slice(7).toUpperCase()}` })
  t.same(upper.tenants[0]?.auth.apiKeys, [hash], 'upper-case hex is accepted and normalised')
  t.match(d?.auth.jwt, { issuer: 'https://idp/', audience: 'broker', creatorsClaim: 'creators', algorithms: ['HS256', 'HS384', 'HS512'] })
  t.equal(c.upstream.url, 'http://127.0.0.1:8090')
  t.equal(c.upstream.timeoutMs, 5000, 'an empty variable means unset')
  t.equal(c.server.port, 9000)
  t.equal((await loadConfig({ ...base, ALLOWED_CREATORS: '*' })).tenants[0]?.creators.allowed, '*')
})

t.test('only TIKTOOLS_API_KEY is required; what starts but is probably a mistake is a warning', async (t) => {
  const bare = await loadConfig({ TIKTOOLS_API_KEY: 'k' })
  t.same(bare.tenants[0]?.auth, { apiKeys: [] })
  t.match(bare.warnings, [/tenant default has no way to authenticate callers/])
  const weak = await loadConfig({ ...base, ADMIN_TOKEN: 'short' })
  t.equal(weak.adminToken, 'short')
  t.match(weak.warnings, [/HMAC secret .* shorter than 32 bytes/, /ADMIN_TOKEN is shorter than 16/])
  t.same((await loadConfig({ ...base, AUTH_JWT_SECRET: 'x'.repeat(32), ADMIN_TOKEN: 'a'.repeat(32) })).warnings, [])
})

t.test('AUTH_PUBLIC_KEY may carry its line breaks as \\n', async (t) => {
  const { exportSPKI, generateKeyPair } = await import('jose')
  const pem = await exportSPKI((await generateKeyPair('ES256', { extractable: true })).publicKey)
  const c = await loadConfig({ TIKTOOLS_API_KEY: 'k', AUTH_PUBLIC_KEY: pem.trim().replace(/\n/g, '\\n') })
  t.equal(c.tenants[0]?.auth.jwt?.publicKey, pem.trim())
})

// Whatever text an operator puts in any variable, start-up ends in one ConfigError naming it, never a stack trace.
t.test('garbage in any variable is a ConfigError naming it, never an exception of another kind', async (t) => {
  const { envSchema } = await import('../../src/config/env.js')
  const garbage = ['notaurl', 'http://[::1', 'http:// x', '://', 'redis://', '%zz', '\u0000', '-1', '1e999', 'NaN', '{}', 'x'.repeat(5000)]
  for (const name of Object.keys(envSchema.shape)) {
    for (const value of garbage) {
      const found = await problems({ ...base, [name]: value }) // throws (failing the test) on anything but a ConfigError
      if (found.length === 0) continue
      t.ok(found.some((p) => p.startsWith(`${name}: `) || p.includes(name)), `${name}=${JSON.stringify(value.slice(0, 20))}: ${JSON.stringify(found)}`)
      // An echoed value cannot break the line or reach a terminal raw: its control characters are escaped.
      t.notOk(found.some((p) => /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/.test(p)), `${name}: printable messages`)
    }
  }
})

t.test('a bad value names the variable', async (t) => {
  t.same(await problems({}), ['TIKTOOLS_API_KEY: required'])
  t.same(await problems({ ...base, PORT: 'eighty' }), ['PORT: expected number'])
  for (const ms of ['0', '-5', '120001', '2.5']) t.match(await problems({ ...base, UPSTREAM_TIMEOUT_MS: ms }), [/^UPSTREAM_TIMEOUT_MS: /], `${ms} ms: outside 1..120000 (.env.example)`)
  for (const ms of ['1', '120000']) t.same(await problems({ ...base, UPSTREAM_TIMEOUT_MS: ms }), [], `${ms} ms: the range's ends`)
  t.match(await problems({ ...base, UPSTREAM_URL: 'ftp://x' }), [/^UPSTREAM_URL: /])
  for (const url of ['notaurl', 'http://[::1', 'http:// x']) t.same(await problems({ ...base, UPSTREAM_URL: url }), ['UPSTREAM_URL: Invalid URL'], `${url}: one message`)
  // The broker adds the path and the query itself: anything else in the URL would be dropped, or leak the key to a proxy's log.
  for (const url of ['https://api.tik.tools/?region=eu', 'https://api.tik.tools/#x', 'https://user:s3cret@api.tik.tools']) {
    const found = await problems({ ...base, UPSTREAM_URL: url })
    t.match(found, [/^UPSTREAM_URL: expected an origin and at most a path/], url)
    t.notMatch(found.join(), /s3cret/, 'a password is not echoed')
  }
  t.same(await problems({ ...base, UPSTREAM_URL: 'http://[::1]:8090/tiktools/' }), [], 'a path prefix and an IPv6 host are fine')
  t.match(await problems({ ...base, LOG_LEVEL: 'loud' }), [/^LOG_LEVEL: /])
  const badRedis = await problems({ ...base, REDIS_URL: 'redis://:hunter2@host:63x79' })
  t.match(badRedis, [/^REDIS_URL: expected/])
  t.notMatch(badRedis.join(), /hunter2/, 'the password is not echoed')
  t.match(await problems({ ...base, REDIS_URL: 'localhost:6379' }), [/^REDIS_URL: expected a redis:\/\/ or rediss:\/\/ URL/])
  t.match(await problems({ ...base, CORS_ORIGINS: 'app.example' }), [/^CORS_ORIGINS \(entry 1\): expected an origin/])
  t.match(await problems({ ...base, ALLOWED_CREATORS: 'ok_name,no way!' }), [/^ALLOWED_CREATORS \(entry 2\): expected a TikTok username/])
  t.match(await problems({ ...base, ALLOWED_CREATORS: 'a,b c' }), [/^ALLOWED_CREATORS \(entry 1\): /, /^ALLOWED_CREATORS \(entry 2\): /], 'each bad entry by its place')
  t.match(await problems({ ...base, BROKER_API_KEYS: 'plain-key' }), [/^BROKER_API_KEYS \(entry 1\): expected sha256:/])
  t.match(await problems({ ...base, AUTH_JWKS_URL: 'https://idp/jwks' }), [/only one of/])
  t.match(await problems({ ...base, TENANTS_FILE: '/nonexistent/tenants.yaml' }), [/^TENANTS_FILE: cannot read/])
})
