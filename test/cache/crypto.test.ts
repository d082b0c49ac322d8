import { compactDecrypt, CompactEncrypt } from 'jose'
import t from 'tap'
import { deriveCacheKeys, ValueSealer } from '../../src/cache/crypto.js'

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
