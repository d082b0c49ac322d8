import { compactDecrypt, CompactEncrypt } from 'jose'
import { createHmac } from 'node:crypto'
import t from 'tap'
import { deriveCacheKeys, hashName, RECENT_NAMES, rememberedNames, ValueSealer } from '../../src/cache/crypto.js'

const { sealKey } = deriveCacheKeys({ encryptionKey: undefined, apiKey: 'tt-live-api-key-1234567890' })
const sealer = new ValueSealer(sealKey)
const enc = new TextEncoder()

t.test('a sealed value is RFC 7516 compact JWE that jose opens, and opens here only for its slot', async (t) => {
  const sealed = await sealer.seal('{"token":"eyJ.x.y"}', 'acme:s:abc')
  const { plaintext, protectedHeader } = await compactDecrypt(sealed, sealKey)
  t.equal(new TextDecoder().decode(plaintext), '{"token":"eyJ.x.y"}', 'jose reads what the broker wrote')
  t.match(protectedHeader, { alg: 'dir', enc: 'A256GCM', ctx: 'acme:s:abc' })
  t.equal(await sealer.open(sealed, 'acme:s:abc'), '{"token":"eyJ.x.y"}')
  t.equal(await sealer.open(sealed, 'acme:s:other'), undefined, 'another slot')
  const other = new ValueSealer(deriveCacheKeys({ encryptionKey: 'another', apiKey: 'x' }).sealKey)
  t.equal(await other.open(sealed, 'acme:s:abc'), undefined, 'another key')
})

t.test('tampering, other algorithms and garbage do not open', async (t) => {
  const sealed = await sealer.seal('value', 'ctx')
  const [h, k, iv, ct, tag] = sealed.split('.') as [string, string, string, string, string]
  const flip = (s: string) => (s[0] === 'A' ? 'B' : 'A') + s.slice(1)
  for (const [name, jwe] of [
    ['ciphertext', [h, k, iv, flip(ct), tag].join('.')],
    ['tag', [h, k, iv, ct, flip(tag)].join('.')],
    ['iv', [h, k, flip(iv), ct, tag].join('.')],
    ['header (the AAD)', [Buffer.from(JSON.stringify({ alg: 'dir', enc: 'A256GCM', ctx: 'ctx', x: 1 })).toString('base64url'), k, iv, ct, tag].join('.')],
    ['an encrypted key part', [h, 'AAAA', iv, ct, tag].join('.')],
    ['four parts', [h, k, iv, ct].join('.')],
    ['garbage', 'not a jwe'],
  ] as const) {
    t.equal(await sealer.open(jwe, 'ctx'), undefined, name)
  }
  const gcm128 = await new CompactEncrypt(enc.encode('value'))
    .setProtectedHeader({ alg: 'dir', enc: 'A128GCM', ctx: 'ctx' })
    .encrypt(sealKey.slice(0, 16))
  t.equal(await sealer.open(gcm128, 'ctx'), undefined, 'A128GCM refused')
  const zipped = await new CompactEncrypt(enc.encode('value')).setProtectedHeader({ alg: 'dir', enc: 'A256GCM', ctx: 'ctx', zip: 'DEF' }).encrypt(sealKey).catch(() => undefined)
  if (zipped !== undefined) t.equal(await sealer.open(zipped, 'ctx'), undefined, 'zip refused')
})

/** What a key name's hash must stay, replica to replica and release to release: HMAC-SHA-256 of the parts joined by U+0000, 22 base64url characters. */
const expected = (key: Uint8Array, ...parts: string[]): string => createHmac('sha256', key).update(parts.join('\u0000')).digest('base64url').slice(0, 22)

t.test('hashName is the truncated HMAC of its parts, remembered or not, and never confuses one part with two', async (t) => {
  const { nameKey } = deriveCacheKeys({ encryptionKey: 'names-a', apiKey: 'x' })
  const cases: string[][] = [['acme', 'user-1'], ['acme'], ['acme', ''], ['acme\u0000user-1'], ['acm', 'e\u0000user-1'], ['', ''], ['quota-ledger', 'tt-live-key']]
  for (const parts of cases) {
    const first = hashName(nameKey, parts[0] as string, parts[1])
    t.equal(first, expected(nameKey, ...parts), `${JSON.stringify(parts)}: the HMAC`)
    t.equal(hashName(nameKey, parts[0] as string, parts[1]), first, `${JSON.stringify(parts)}: remembered, the same`)
  }
  t.not(hashName(nameKey, 'acme'), hashName(nameKey, 'acme', ''), 'one part is not two with an empty second')
  // Equal texts that are different strings (built at run time) find the same remembered name.
  const built = ['ac', 'me'].join('')
  t.equal(hashName(nameKey, built, `user-${1}`), expected(nameKey, 'acme', 'user-1'))
  const other = deriveCacheKeys({ encryptionKey: 'names-b', apiKey: 'x' }).nameKey
  t.equal(hashName(other, 'acme', 'user-1'), expected(other, 'acme', 'user-1'), 'another key remembers its own names')
  t.not(hashName(other, 'acme', 'user-1'), hashName(nameKey, 'acme', 'user-1'))
})

t.test('the remembered names stay bounded (two generations), and a name in use survives a turnover', async (t) => {
  const { nameKey } = deriveCacheKeys({ encryptionKey: 'names-bounded', apiKey: 'x' })
  const hot = hashName(nameKey, 'acme', 'hot-user')
  for (let i = 0; i < RECENT_NAMES * 5; i++) {
    hashName(nameKey, `tenant-${i % 7}`, `user-${i}`)
    if (i % 1000 === 0) t.equal(hashName(nameKey, 'acme', 'hot-user'), hot)
  }
  t.ok(rememberedNames(nameKey) <= 2 * RECENT_NAMES, `at most ${2 * RECENT_NAMES} names held (${rememberedNames(nameKey)})`)
  t.ok(rememberedNames(nameKey) >= RECENT_NAMES, 'the last generation is kept whole')
  t.equal(hashName(nameKey, `tenant-${3}`, `user-${RECENT_NAMES * 5 - 4}`), expected(nameKey, 'tenant-3', `user-${RECENT_NAMES * 5 - 4}`), 'a recent name, right')
  t.equal(hashName(nameKey, 'tenant-0', 'user-0'), expected(nameKey, 'tenant-0', 'user-0'), 'a name long forgotten is hashed again, the same')
})
