import { mkdtemp, writeFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { exportSPKI, generateKeyPair } from 'jose'
import t from 'tap'
import { ConfigError, loadConfig } from '../../src/config/index.js'
import { parseTenantsText } from '../../src/config/tenants-file.js'

function issues(text: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseTenantsText(text, env)
  } catch (err) {
    if (err instanceof ConfigError) return err.issues
    throw err
  }
  return []
}

const CONTRACT_EXAMPLE = `
tenants:
  acme:
    enabled: true
    auth:
      jwt:
        issuer: https://auth.acme.example/
        audience: tiktok-broker
        jwksUrl: https://auth.acme.example/.well-known/jwks.json
        algorithms: [RS256, ES256]
        creatorsClaim: tiktok_creators
      apiKeys: ["sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]
    cors: { origins: ["https://app.acme.example"] }
    creators: { allowed: [streamer1, streamer2], allowUnrestricted: false }
    token:
      expireAfter: { default: 600, max: 3600 }
      maxWebsockets: { default: 1, max: 3 }
      minRemaining: 60
      share: subject
    limits:
      perSubjectPerMinute: 30
      perTenantPerMinute: 3000
      upstreamMintsPerMinute: 20
`

t.test("the contract's example file loads as written", async (t) => {
  const [acme] = parseTenantsText(CONTRACT_EXAMPLE, {})
  t.equal(acme?.id, 'acme')
  t.same(acme?.auth.jwt?.algorithms, ['RS256', 'ES256'])
  t.same(acme?.token.maxWebsockets, { default: 1, max: 3 })
  t.equal(acme?.limits.upstreamMintsPerMinute, 20)
})

t.test('every section but auth may be left out; JSON works too', async (t) => {
  const [min] = parseTenantsText('{"tenants": {"min": {"auth": {"jwt": {"secret": "s"}}}}}', {})
  t.match(min, { enabled: true, creators: { allowed: [] }, token: { expireAfter: { default: 600, max: 3600 }, share: 'subject' } })
  const [low] = parseTenantsText('tenants:\n  low:\n    auth: {jwt: {secret: s}}\n    token: {expireAfter: {max: 300}}\n', {})
  t.same(low?.token.expireAfter, { default: 300, max: 300 }, 'a missing default follows a lower max')
})

t.test('${VAR} is replaced from the environment; an unset one is an error naming the field', async (t) => {
  const text = 'tenants:\n  acme:\n    auth: {jwt: {secret: "${ACME_SECRET}", issuer: "https://${HOST_NAME}/"}}\n'
  const [acme] = parseTenantsText(text, { ACME_SECRET: 'from-env', HOST_NAME: 'idp.example' })
  t.equal(acme?.auth.jwt?.secret, 'from-env')
  t.equal(acme?.auth.jwt?.issuer, 'https://idp.example/')
  t.same(issues(text, { HOST_NAME: 'x' }), ['tenants.acme.auth.jwt.secret: environment variable ACME_SECRET is not set'])
  t.same(issues('tenants:\n  a:\n    auth: {jwt: {secret: "${X}: {evil: 1}"}}\n', { X: 'v' }).length, 0, 'values cannot inject YAML')
})

t.test('${VAR} works for numbers and booleans and inside flow maps', async (t) => {
  const text = 'tenants:\n  acme:\n    enabled: ${ON}\n    auth: { jwt: { secret: ${S} } }\n    limits: { perSubjectPerMinute: ${N} }\n    creators: { allowed: [${C}] }\n'
  const [acme] = parseTenantsText(text, { ON: 'false', S: '12345', N: '30', C: 'streamer1' })
  t.equal(acme?.enabled, false)
  t.equal(acme?.auth.jwt?.secret, '12345', 'a secret of digits stays a string')
  t.equal(acme?.limits.perSubjectPerMinute, 30)
  t.same(acme?.creators.allowed, ['streamer1'])
  t.match(issues(text, { ON: 'maybe', S: 's', N: '30', C: 'x1' }), [/tenants\.acme\.enabled: expected boolean/])
})

t.test('a bad file names the field', async (t) => {
  t.same(issues('tenants:\n  acme:\n    auth: {jwt: {secret: s}}\n    token: {expireAfter: {max: "a"}}\n'), [
    'tenants.acme.token.expireAfter.max: expected number',
  ])
  t.same(issues('tenants:\n  acme:\n    auth: {jwt: {secret: s}}\n    limits: {perMinute: 3}\n'), ['tenants.acme.limits: unknown field perMinute'])
  t.same(issues('tenants:\n  acme:\n    cors: {origins: []}\n'), ['tenants.acme.auth: required (expected object)'])
  t.match(issues('tenants:\n  acme:\n    auth: {}\n'), [/tenants\.acme\.auth: a tenant needs auth\.jwt or at least one auth\.apiKeys/])
  t.match(issues('tenants:\n  acme:\n    auth: {jwt: {secret: s, algorithms: [RS256]}}\n'), [/tenants\.acme\.auth\.jwt\.algorithms: RS256 cannot be used with a secret/])
  t.match(issues('tenants:\n  acme:\n    auth: {jwt: {secret: s, algorithms: [none]}}\n'), [/tenants\.acme\.auth\.jwt\.algorithms\.0/])
  t.match(issues('tenants:\n  acme:\n    auth: {jwt: {secret: s, jwksUrl: "https://idp/jwks"}}\n'), [/exactly one of secret, publicKey or jwksUrl/])
  t.match(issues('tenants:\n  acme:\n    auth: {jwt: {secret: s}}\n    token: {expireAfter: {default: 20}}\n'), [/tenants\.acme\.token\.expireAfter\.default/])
  t.match(issues('tenants:\n  acme:\n    auth: {jwt: {secret: s}}\n    token: {maxWebsockets: {default: 3, max: 2}}\n'), [/tenants\.acme\.token\.maxWebsockets\.default: default must not exceed max/])
  t.match(issues('tenants:\n  Bad Id:\n    auth: {jwt: {secret: s}}\n'), [/tenants\.Bad Id: expected a tenant id/])
  t.match(issues('tenants:\n  pem:\n    auth: {jwt: {publicKey: "-----BEGIN PUBLIC KEY-----\\nnope\\n-----END PUBLIC KEY-----"}}\n'), [/tenants\.pem\.auth\.jwt\.publicKey: expected a PEM public key/])
  t.match(issues('tenants: {}\n'), [/tenants: at least one tenant/])
  t.match(issues('tenants: [\n'), [/not valid YAML or JSON/])
})

t.test('TENANTS_FILE is read at start; a PEM key is checked then', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tkb-cfg-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const { publicKey } = await generateKeyPair('ES256', { extractable: true })
  const pem = await exportSPKI(publicKey)
  const file = join(dir, 'tenants.yaml')
  await writeFile(file, `tenants:\n  pem:\n    auth:\n      jwt:\n        publicKey: |\n${pem.split('\n').map((l) => `          ${l}`).join('\n')}\n`)
  const c = await loadConfig({ TIKTOOLS_API_KEY: 'k', TENANTS_FILE: file })
  t.equal(c.tenants[0]?.id, 'pem')
  t.equal(c.tenantsFile, file)
  t.same(c.tenants[0]?.auth.jwt?.algorithms.includes('ES256'), true)
})
