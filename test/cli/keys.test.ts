import t from 'tap'
import { ApiKeyIndex, hashApiKey } from '../../src/auth/api-keys.js'
import { generateApiKey } from '../../src/cli/keys.js'
import { runCliInProcess, runCliProcess, STACK_FRAME, tempFile } from './helpers.js'

const KEY = 'tkb_4M2yqk9V8n0wQeX3pR7tLs6dZ1aJcHbFgUoYiKmNvEx'
const KEY_FORMAT = /^tkb_[A-Za-z0-9_-]{43}$/

t.test('hash-key: stdin in, exactly its sha256:<hex> out', async (t) => {
  const r = await runCliProcess(['hash-key'], { input: KEY })
  t.same(r, { code: 0, stdout: `${hashApiKey(KEY)}\n`, stderr: '' })
})

t.test('hash-key drops one trailing newline, as `echo` adds', async (t) => {
  for (const input of [`${KEY}\n`, `${KEY}\r\n`]) {
    const r = await runCliInProcess(['hash-key'], { input })
    t.same(r, { code: 0, stdout: `${hashApiKey(KEY)}\n`, stderr: '' }, JSON.stringify(input))
  }
})

t.test('hash-key refuses an empty stdin with exit 1', async (t) => {
  for (const input of ['', '\n']) {
    const r = await runCliProcess(['hash-key'], { input })
    t.equal(r.code, 1, JSON.stringify(input))
    t.equal(r.stdout, '')
    t.equal(r.stderr, 'tiktools-broker: hash-key: no key on stdin\n')
  }
})

t.test('hash-key refuses keys the broker could never be sent', async (t) => {
  const spaced = await runCliInProcess(['hash-key'], { input: `${KEY} extra` })
  t.same([spaced.code, spaced.stdout], [1, ''])
  t.match(spaced.stderr, /contains whitespace/)

  const huge = await runCliProcess(['hash-key'], { input: 'k'.repeat(100_000) })
  t.same([huge.code, huge.stdout], [1, ''])
  t.match(huge.stderr, /longer than 8192 bytes/)
  t.notMatch(huge.stderr, STACK_FRAME)
})

t.test('hash-key warns on stderr about a short key but still prints only the hash', async (t) => {
  const r = await runCliInProcess(['hash-key'], { input: 'test' })
  t.equal(r.code, 0)
  t.equal(r.stdout, `${hashApiKey('test')}\n`)
  t.match(r.stderr, /warning: a 4-character key is easy to guess/)
})

t.test('hash-key on a terminal refuses at once with a hint to pipe the key', async (t) => {
  const r = await runCliInProcess(['hash-key'], { isTTY: true, input: KEY })
  t.equal(r.code, 2)
  t.equal(r.stdout, '')
  t.match(r.stderr, 'printf %s "$KEY" | tiktools-broker hash-key')
})

t.test('new-key: a labelled key and a hash that verifies it', async (t) => {
  const r = await runCliProcess(['new-key'])
  t.equal(r.code, 0)
  t.equal(r.stderr, '')
  const match = /^key: {2}(\S+)\nhash: (sha256:[0-9a-f]{64})\n$/.exec(r.stdout)
  if (match === null) return t.fail(`unexpected output: ${JSON.stringify(r.stdout)}`)
  const [, key, hash] = match as unknown as [string, string, string]
  t.match(key, KEY_FORMAT)
  t.equal(hash, hashApiKey(key))
  t.equal(new ApiKeyIndex([{ id: 'acme', auth: { apiKeys: [hash] } }]).match(key), 'acme', 'the broker accepts the key')
})

t.test('new-key --json, and a different key every time', async (t) => {
  const outputs = await Promise.all([runCliProcess(['new-key', '--json']), runCliProcess(['new-key', '--json'])])
  const keys = outputs.map((r) => {
    t.same([r.code, r.stderr], [0, ''])
    const parsed = JSON.parse(r.stdout) as { key: string; hash: string }
    t.same(Object.keys(parsed), ['key', 'hash'])
    t.match(parsed.key, KEY_FORMAT)
    t.equal(parsed.hash, hashApiKey(parsed.key))
    return parsed.key
  })
  t.not(keys[0], keys[1])
  t.not(generateApiKey(), generateApiKey())
})

t.test('new-key | hash-key | tenants file: the round trip check-config accepts', async (t) => {
  const created = JSON.parse((await runCliProcess(['new-key', '--json'])).stdout) as { key: string; hash: string }
  const hashed = await runCliProcess(['hash-key'], { input: `${created.key}\n` })
  t.equal(hashed.stdout, `${created.hash}\n`)
  const file = await tempFile(t, 'tenants.yaml', `tenants:\n  acme:\n    auth: { apiKeys: ["${hashed.stdout.trim()}"] }\n`)
  const checked = await runCliProcess(['check-config', file])
  t.equal(checked.code, 0)
  t.match(checked.stdout, /acme +enabled +auth: 1 API key/)
  t.notMatch(checked.stdout, created.hash)
})
