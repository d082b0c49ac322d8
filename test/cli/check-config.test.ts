import { exportSPKI, generateKeyPair } from 'jose'
import t from 'tap'
import { hashApiKey } from '../../src/auth/api-keys.js'
import { ConfigError, loadConfig } from '../../src/config/index.js'
import { runCliInProcess, runCliProcess, STACK_FRAME, tempDir, tempFile } from './helpers.js'

const SECRET = 'super-secret-value'
const KEY_HASH = hashApiKey('tkb_check-config-test-key')
const SECRET_VAR = 'TKB_CLI_TEST_ACME_SECRET'

async function okFile(t: Parameters<typeof tempDir>[0]): Promise<{ file: string; pem: string }> {
  const { publicKey } = await generateKeyPair('ES256')
  const pem = await exportSPKI(publicKey)
  const file = await tempFile(
    t,
    'tenants.yaml',
    `tenants:
  acme:
    auth:
      jwt: { secret: "\${${SECRET_VAR}}", issuer: https://auth.acme.example/ }
      apiKeys: ["${KEY_HASH}"]
    creators: { allowed: [streamer1, streamer2] }
    limits: { perSubjectPerMinute: 30, perTenantPerMinute: 3000, upstreamMintsPerMinute: 20 }
  globex:
    enabled: false
    auth:
      jwt:
        issuer: https://auth.globex.example/
        publicKey: |
${pem.trim().split('\n').map((l) => `          ${l}`).join('\n')}
    creators: { allowed: "*" }
  initech:
    auth: { jwt: { jwksUrl: "https://auth.initech.example/jwks.json" } }
  keys-only:
    auth: { apiKeys: ["${hashApiKey('tkb_first-key')}", "${hashApiKey('tkb_second-key')}"] }
`,
  )
  return { file, pem }
}

t.test('a valid file: exit 0 and one line per tenant on stdout', async (t) => {
  const { file } = await okFile(t)
  const r = await runCliProcess(['check-config', file], { env: { [SECRET_VAR]: SECRET } })
  t.equal(r.stderr, '')
  t.equal(r.code, 0)
  const [header, ...lines] = r.stdout.trimEnd().split('\n')
  t.equal(header, `${file}: OK, 4 tenants`)
  t.equal(lines.length, 4)
  const line = (id: string) => lines.find((l) => l.trimStart().startsWith(`${id} `)) ?? ''
  t.match(line('acme'), /enabled +auth: jwt secret, 1 API key +creators: 2 +limits: 30\/min per subject, 3000\/min per tenant, 20 upstream mints\/min$/)
  t.match(line('globex'), /disabled +auth: jwt publicKey, 0 API keys +creators: \* +limits: 60\/min per subject, 6000\/min per tenant$/)
  t.match(line('initech'), /enabled +auth: jwt jwksUrl, 0 API keys +creators: 0 /)
  t.match(line('keys-only'), /enabled +auth: 2 API keys +creators: 0 /)
})

t.test('the summary never shows a secret, a PEM key or a key hash', async (t) => {
  const { file, pem } = await okFile(t)
  const r = await runCliProcess(['check-config', file], { env: { [SECRET_VAR]: SECRET } })
  t.equal(r.code, 0)
  const output = r.stdout + r.stderr
  t.notMatch(output, SECRET)
  t.notMatch(output, 'BEGIN PUBLIC KEY')
  t.notMatch(output, pem.split('\n')[1] as string)
  t.notMatch(output, 'sha256:')
  t.notMatch(output, KEY_HASH.slice('sha256:'.length, 'sha256:'.length + 16))
})

const BROKEN = `tenants:
  acme:
    auth:
      jwt: { secret: ${SECRET}, algorithms: [RS256] }
    token: { expireAfter: { max: "lots" } }
    limits: { perSubjectPerMinute: -1 }
    cors: { origins: ["not an origin"] }
    colour: blue
  other:
    auth: { apiKeys: ["sha256:abc"] }
`

t.test('a broken file: every problem with its field on stderr, exit 1', async (t) => {
  const file = await tempFile(t, 'broken.yaml', BROKEN)
  const r = await runCliProcess(['check-config', file])
  t.equal(r.code, 1)
  t.equal(r.stdout, '')
  const [header, ...issues] = r.stderr.trimEnd().split('\n')
  t.equal(header, `tiktools-broker: ${file} is not a valid tenants file`)
  for (const issue of issues) t.match(issue, /^ {2}tenants\.(acme|other)(\.[\w.]+)?: \S/, 'one indented `field: problem` per line')
  const expected = [
    '  tenants.acme.auth.jwt.algorithms: RS256 cannot be used with a secret',
    '  tenants.acme.token.expireAfter.max: expected number',
    '  tenants.acme.cors.origins.0: expected an origin such as https://app.example.com',
    '  tenants.acme: unknown field colour',
    '  tenants.other.auth.apiKeys.0: expected sha256:<64 hex digits>',
  ]
  for (const line of expected) t.ok(issues.includes(line), line)
  t.ok(issues.some((i) => i.startsWith('  tenants.acme.limits.perSubjectPerMinute: ')))
  t.ok(issues.length >= 6, `all ${issues.length} problems at once`)
  t.notMatch(r.stderr, SECRET)
  t.notMatch(r.stderr, STACK_FRAME)
})

t.test('check-config reports exactly what the server refuses to start with', async (t) => {
  const file = await tempFile(t, 'broken.yaml', BROKEN)
  const server = await loadConfig({ TIKTOOLS_API_KEY: 'k', TENANTS_FILE: file }).then(
    () => t.fail('the server accepted a broken file'),
    (err: unknown) => (err instanceof ConfigError ? err.issues : t.fail(String(err))),
  )
  const cli = await runCliInProcess(['check-config', file])
  t.equal(cli.code, 1)
  t.same(cli.stderr.trimEnd().split('\n').slice(1), (server as string[]).map((i) => `  ${i}`))
})

t.test('an unset ${VAR}: exit 1 naming the field and the variable', async (t) => {
  const { file } = await okFile(t)
  const r = await runCliProcess(['check-config', file], { env: { [SECRET_VAR]: undefined } })
  t.equal(r.code, 1)
  t.equal(r.stdout, '')
  t.match(r.stderr, `\n  tenants.acme.auth.jwt.secret: environment variable ${SECRET_VAR} is not set\n`)
})

t.test('a missing file: one clear line, exit 1, no stack', async (t) => {
  const missing = `${await tempDir(t)}/nope.yaml`
  const r = await runCliProcess(['check-config', missing])
  t.equal(r.code, 1)
  t.equal(r.stdout, '')
  t.equal(r.stderr, `tiktools-broker: cannot read ${missing}: no such file\n`)
})

t.test('a directory or a file that is not YAML: exit 1 with the reason', async (t) => {
  const dir = await tempDir(t)
  const asDir = await runCliInProcess(['check-config', dir])
  t.same(asDir, { code: 1, stdout: '', stderr: `tiktools-broker: cannot read ${dir}: it is a directory\n` })

  const file = await tempFile(t, 'tenants.yaml', 'tenants: [unclosed\n')
  const r = await runCliProcess(['check-config', file])
  t.equal(r.code, 1)
  t.match(r.stderr, /\n {2}tenants file: not valid YAML or JSON \(.+\)\n$/)
  t.notMatch(r.stderr, STACK_FRAME)
})

t.test('a JSON tenants file is read too, ${VAR} from the environment given', async (t) => {
  const json = { tenants: { solo: { auth: { jwt: { secret: '${SOLO_SECRET}' } } } } }
  const file = await tempFile(t, 'tenants.json', JSON.stringify(json))
  const r = await runCliInProcess(['check-config', file], { env: { SOLO_SECRET: SECRET } })
  t.equal(r.code, 0)
  t.match(r.stdout, /^ {2}solo +enabled +auth: jwt secret, 0 API keys +creators: 0 +limits: 60\/min per subject, 6000\/min per tenant\n$/m)
  t.notMatch(r.stdout, SECRET)
})
