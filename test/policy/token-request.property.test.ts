import fc from 'fast-check'
import t from 'tap'
import { parseTokenRequest, plainTokenRequest, tokenRequestSchema } from '../../src/policy/token-request.js'

// The hand-written check of the hot path must be zod's schema exactly: never more permissive, never a different answer.
const creator = fc.oneof(
  fc.constantFrom('a1', 'streamer1', '@Streamer1', '@@x1', 'x', 'A.B_c', '', 'no spaces', 'x'.repeat(24), 'x'.repeat(25), 'İstanbul', 'ß_ok'),
  fc.string({ maxLength: 26 }),
)
const number = fc.oneof(
  fc.integer({ min: -5, max: 100 }),
  fc.constantFrom(29, 30, 31, 0, 1, 2 ** 53, 2 ** 53 - 1, -(2 ** 53), 1.5, 30.0000001, Number.MAX_VALUE, Number.NaN, Infinity, -0),
  fc.double(),
)
const anyValue = fc.oneof(fc.string({ maxLength: 5 }), number, fc.boolean(), fc.constant(null), fc.constant(undefined), fc.array(fc.string({ maxLength: 3 }), { maxLength: 3 }), fc.object({ maxDepth: 1 }))
const field = {
  allowed_creators: fc.oneof(fc.array(creator, { maxLength: 52 }), fc.array(creator, { minLength: 1, maxLength: 3 }), anyValue, fc.array(anyValue, { maxLength: 3 })),
  expire_after: fc.oneof(number, anyValue),
  max_websockets: fc.oneof(number, anyValue),
  subject: fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('', 's'.repeat(256), 's'.repeat(257)), anyValue),
  rejected_token: fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('', 't'.repeat(16_384), 't'.repeat(16_385)), anyValue),
}
const body = fc.oneof(
  fc.record(field, { requiredKeys: [] }),
  fc.record({ ...field, unknown: anyValue, toString: anyValue, __proto__x: anyValue }, { requiredKeys: [] }),
  fc.dictionary(fc.constantFrom('allowed_creators', 'subject', 'extra', 'constructor'), anyValue, { maxKeys: 3 }),
  anyValue,
  fc.constant(undefined),
)

t.test('the plain check answers what zod answers, or leaves the body to zod', async (t) => {
  let plainAnswered = 0
  fc.assert(
    fc.property(body, (b) => {
      const plain = plainTokenRequest(b)
      const zod = tokenRequestSchema.safeParse(b === undefined ? {} : b)
      if (plain === undefined) return true
      plainAnswered += 1
      if (!zod.success) throw new Error(`accepted what zod refuses: ${JSON.stringify(b)}`)
      t.same(plain, zod.data)
      return true
    }),
    { numRuns: 5000 },
  )
  t.ok(plainAnswered > 500, `the plain check answered ${plainAnswered} of 5000 bodies itself`)
})

t.test('at every boundary of the schema, the plain check and zod agree', async (t) => {
  const agree = (b: unknown): void => {
    const plain = plainTokenRequest(b)
    const zod = tokenRequestSchema.safeParse(b)
    if (zod.success) t.same(plain, zod.data, JSON.stringify(b).slice(0, 80))
    else t.equal(plain, undefined, `refused: ${JSON.stringify(b).slice(0, 80)}`)
  }
  for (const n of [-1, 0, 1, 2, 28, 29, 30, 31, 1.5, 29.5, 30.5, 2 ** 53 - 1, 2 ** 53, -(2 ** 53), Number.NaN, Infinity, '30', null, true]) {
    agree({ expire_after: n })
    agree({ max_websockets: n })
  }
  for (const length of [0, 1, 256, 257]) agree({ subject: 's'.repeat(length) })
  for (const length of [0, 1, 16_384, 16_385]) agree({ rejected_token: 't'.repeat(length) })
  for (const count of [0, 1, 50, 51]) agree({ allowed_creators: Array.from({ length: count }, (_, i) => `c${i}`) })
  for (const c of ['a', 'ab', '@ab', '@@ab', 'AB', 'x'.repeat(24), 'x'.repeat(25), '@' + 'x'.repeat(24), 'a-b', 'a b', 'İİ', 'a.b_c', 7, null]) agree({ allowed_creators: [c] })
  for (const b of [{}, { extra: 1 }, { subject: 's', extra: undefined }, [], 'x', 1, null]) agree(b)
})

t.test('an empty rejected_token is accepted and left out: it names no token, so it changes nothing', async (t) => {
  t.same(parseTokenRequest({ rejected_token: '' }), {})
  t.same(parseTokenRequest({ allowed_creators: ['A1'], rejected_token: '' }), { allowed_creators: ['a1'] })
  t.same(parseTokenRequest({ rejected_token: 't' }), { rejected_token: 't' })
  t.throws(() => parseTokenRequest({ rejected_token: 't'.repeat(16_385) }), { code: 'BAD_REQUEST' })
  t.throws(() => parseTokenRequest({ rejected_token: 7 }), { code: 'BAD_REQUEST' })
})

t.test('the bodies clients send are answered without zod', async (t) => {
  t.same(plainTokenRequest({ allowed_creators: ['@Streamer1', 'b.c_d'] }), { allowed_creators: ['streamer1', 'b.c_d'] })
  t.same(plainTokenRequest({ allowed_creators: ['s1'], subject: 'u-1', expire_after: 600, max_websockets: 2 }), {
    allowed_creators: ['s1'],
    subject: 'u-1',
    expire_after: 600,
    max_websockets: 2,
  })
  t.same(plainTokenRequest({}), {})
  t.same(plainTokenRequest(undefined), {})
  t.equal(plainTokenRequest({ allowed_creators: [] }), undefined, 'an error is zod’s to word')
  t.equal(plainTokenRequest(Object.create({ subject: 'inherited' })), undefined)
})
