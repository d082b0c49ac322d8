import { spawn } from 'node:child_process'
import t from 'tap'
import { hashApiKey } from '../../src/auth/api-keys.js'
import { ConfigError } from '../../src/config/errors.js'
import { TenantRegistry } from '../../src/config/registry.js'
import { parseTenantsText } from '../../src/config/tenants-file.js'
import { tenant } from '../helpers/broker.js'
import { runCliProcess, tempFile } from '../cli/helpers.js'
import { DIST_MAIN } from '../helpers/process.js'

const HASH = hashApiKey('tkb_shared-key-0123456789')
const UPPER = `sha256:${HASH.slice('sha256:'.length).toUpperCase()}`

const SHARED_KEY = `tenants:
  acme:
    auth: { apiKeys: ["${HASH}"] }
  beta:
    auth: { apiKeys: ["sha256:${'0'.repeat(64)}", "${UPPER}"] }
`
const SHARED_ISSUER = `tenants:
  acme:
    auth: { jwt: { issuer: https://idp.example/, secret: acme-secret-0123456789abcdef0123 } }
  beta:
    auth: { jwt: { issuer: https://idp.example/, secret: beta-secret-0123456789abcdef0123 } }
`

function problems(text: string): string[] {
  try {
    parseTenantsText(text, {})
  } catch (err) {
    if (err instanceof ConfigError) return err.issues
    throw err
  }
  return []
}

t.test('one API key hash listed by two tenants (one in upper-case hex) is a configuration error naming both', async (t) => {
  const issues = problems(SHARED_KEY)
  t.equal(issues.length, 1)
  t.match(issues[0], /^tenants\.beta\.auth\.apiKeys\.1: .*tenants\.acme\.auth\.apiKeys\.0.*\(acme or beta\)/)
  t.notMatch(issues[0], /sha256|[0-9a-f]{16}/i, 'the hash itself is not shown')
})

t.test('two tenants that could both accept one JWT are a configuration error naming both', async (t) => {
  const jwt = (issuer: string | undefined, audience?: string | string[], audienceClaim?: string) =>
    JSON.stringify({
      ...(issuer !== undefined && { issuer }),
      ...(audience !== undefined && { audience }),
      ...(audienceClaim !== undefined && { audienceClaim }),
      secret: 'secret-0123456789abcdef0123456789',
    })
  const file = (a: string, b: string) => `tenants:\n  acme:\n    auth: { jwt: ${a} }\n  beta:\n    auth: { jwt: ${b} }\n`
  const I = 'https://idp.example/'
  const ambiguous: Array<[string, string, string]> = [
    ['same issuer, no audience', jwt(I), jwt(I)],
    ['same issuer, one audience missing', jwt(I, 'a'), jwt(I)],
    ['same issuer, audiences overlap', jwt(I, ['a', 'b']), jwt(I, ['b', 'c'])],
    ['no issuer on either', jwt(undefined), jwt(undefined)],
    // One token may carry aud "one" and client_id "two": both tenants would accept it.
    ['same issuer, distinct audiences read from different claims', jwt(I, 'one'), jwt(I, 'two', 'client_id')],
  ]
  for (const [what, a, b] of ambiguous) {
    const issues = problems(file(a, b))
    t.equal(issues.length, 1, what)
    t.match(issues[0], /^tenants\.beta\.auth\.jwt: tenants acme and beta could both accept one user JWT/, what)
  }
  const distinct: Array<[string, string, string]> = [
    ['different issuers', jwt(I), jwt('https://other.example/')],
    ['same issuer, distinct audiences', jwt(I, ['a', 'b']), jwt(I, 'c')],
    ['same issuer, distinct audiences from the same other claim', jwt(I, 'one', 'client_id'), jwt(I, 'two', 'client_id')],
    ['one issuer-less tenant beside one with an issuer (the exact issuer wins)', jwt(undefined), jwt(I)],
  ]
  for (const [what, a, b] of distinct) t.same(problems(file(a, b)), [], what)
})

t.test('the registry refuses the same, whatever the tenants came from (reload, tests, embedding)', async (t) => {
  const a = tenant('acme', { auth: { apiKeys: [HASH] } })
  const b = tenant('beta', { auth: { apiKeys: [UPPER] } })
  t.throws(() => new TenantRegistry([a, b]), { name: 'ConfigError', message: /acme or beta/ })
  const registry = new TenantRegistry([a])
  t.throws(() => registry.replace([a, b]), { name: 'ConfigError' })
  t.same(registry.all().map((x) => x.id), ['acme'], 'the running set is kept')
})

t.test('check-config says no to both, naming both tenants, exit 1', async (t) => {
  for (const text of [SHARED_KEY, SHARED_ISSUER]) {
    const file = await tempFile(t, 'tenants.yaml', text)
    const r = await runCliProcess(['check-config', file])
    t.equal(r.code, 1)
    t.equal(r.stdout, '')
    t.match(r.stderr, /tenants\.beta\.auth\.\S+: .*acme.*beta/)
  }
})

t.test('the server refuses to start on either, naming both tenants', async (t) => {
  for (const text of [SHARED_KEY, SHARED_ISSUER]) {
    const file = await tempFile(t, 'tenants.yaml', text)
    const child = spawn(process.execPath, [DIST_MAIN.pathname], {
      env: { PATH: process.env.PATH ?? '', TIKTOOLS_API_KEY: 'tt-key', TENANTS_FILE: file, HOST: '127.0.0.1', PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    child.stdout.on('data', (d) => (out += String(d)))
    child.stderr.on('data', (d) => (out += String(d)))
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
    t.equal(code, 1, 'exit 1')
    t.match(out, /invalid configuration\n {2}tenants\.beta\.auth\.\S+: .*acme.*beta/)
  }
})
