import fc from 'fast-check'
import t from 'tap'
import { MemoryTokenStore } from '../../src/cache/memory-store.js'
import { tokenAnswerJson } from '../../src/routes/token.js'

// The 200 body is built as text on the hot path: it must be exactly the JSON of the contract's object, key order included.
const text = fc.oneof(
  fc.constantFrom('eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig-_', '', 'quote " backslash \\ slash /', 'line\nbreak\ttab\u0000nul', '\u2028\u2029', 'emoji 🎥', '\ud800 lone surrogate'),
  fc.string({ unit: 'binary', maxLength: 400 }),
)
const whole = fc.oneof(fc.integer({ min: 0, max: 2 ** 31 }), fc.constantFrom(0, 1, 1_796_058_041, Number.MAX_SAFE_INTEGER))

t.test('tokenAnswerJson is JSON.stringify of the contract body, for any token and grant', async (t) => {
  let runs = 0
  fc.assert(
    fc.property(text, whole, whole, fc.option(fc.array(text, { maxLength: 50 })), whole, fc.boolean(), (token, expiresAt, expireAfter, creators, maxWebsockets, cached) => {
      runs += 1
      const json = tokenAnswerJson({ token, expiresAt, issuedAt: null, expireAfter }, { creators, expireAfter, maxWebsockets }, cached)
      const expected = JSON.stringify({
        status_code: 0,
        data: { token, expires_at: expiresAt, expire_after: expireAfter, allowed_creators: creators, max_websockets: maxWebsockets, cached },
      })
      if (json !== expected) throw new Error(`differs:\n${json}\n${expected}`)
      return true
    }),
    { numRuns: 3000 },
  )
  t.equal(runs, 3000)
})

t.test('a token answer parses back to the values it was built from', async (t) => {
  const json = tokenAnswerJson({ token: 'a"b\\c', expiresAt: 1_796_058_041, issuedAt: 1_796_057_441, expireAfter: 600 }, { creators: ['streamer1'], expireAfter: 600, maxWebsockets: 2 }, true)
  t.same(JSON.parse(json), {
    status_code: 0,
    data: { token: 'a"b\\c', expires_at: 1_796_058_041, expire_after: 600, allowed_creators: ['streamer1'], max_websockets: 2, cached: true },
  })
  t.same(JSON.parse(tokenAnswerJson({ token: 't', expiresAt: 5, issuedAt: null, expireAfter: 5 }, { creators: null, expireAfter: 5, maxWebsockets: 1 }, false)).data.allowed_creators, null)
})

t.test('a hit served from the memory store (its token literal made when stored) answers the same body, for any token', async (t) => {
  const store = new MemoryTokenStore()
  let runs = 0
  await fc.assert(
    fc.asyncProperty(text, whole, fc.boolean(), async (token, expiresAt, withIat) => {
      runs += 1
      const key = { tenantId: 'acme', subject: `u${runs}`, grant: 'streamer1|1|600' }
      await store.set(key, { token, expiresAt, issuedAt: withIat ? expiresAt - 600 : null, expireAfter: 600 }, 60_000)
      const hit = store.get(key)
      if (hit === undefined) throw new Error('stored token not found')
      if (hit.token !== token) throw new Error(`token differs: ${JSON.stringify(hit.token)} vs ${JSON.stringify(token)}`)
      const grant = { creators: ['streamer1'], expireAfter: 600, maxWebsockets: 1 }
      const expected = JSON.stringify({
        status_code: 0,
        data: { token, expires_at: expiresAt, expire_after: 600, allowed_creators: ['streamer1'], max_websockets: 1, cached: true },
      })
      if (tokenAnswerJson(hit, grant, true) !== expected) throw new Error(`differs for ${JSON.stringify(token)}`)
      return true
    }),
    { numRuns: 2000 },
  )
  t.equal(runs, 2000)
})
