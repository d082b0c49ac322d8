import fc from 'fast-check'
import t from 'tap'
import { jsonString, jsonStringArray } from '../../src/http/json-text.js'

// Hand-written JSON on the hot paths must be JSON.stringify's text exactly, for any string.
const text = fc.oneof(
  fc.constantFrom('', 'req-1a', 'POST', '/v1/token', 'quote " backslash \\ slash /', 'line\nbreak\ttab\u0000nul\u001f', '\u007f\u2028\u2029', 'emoji 🎥', '\ud800 lone', 'lone \udfff', 'é'),
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.string({ unit: 'grapheme', maxLength: 50 }),
)

t.test('jsonString is JSON.stringify of a string', async (t) => {
  let runs = 0
  fc.assert(
    fc.property(text, (s) => {
      runs += 1
      if (jsonString(s) !== JSON.stringify(s)) throw new Error(`differs for ${JSON.stringify(s)}: ${jsonString(s)}`)
    }),
    { numRuns: 5000 },
  )
  t.equal(runs, 5000)
})

t.test('jsonStringArray is JSON.stringify of a list of strings, or of null', async (t) => {
  let runs = 0
  fc.assert(
    fc.property(fc.option(fc.array(text, { maxLength: 20 })), (list) => {
      runs += 1
      if (jsonStringArray(list) !== JSON.stringify(list)) throw new Error(`differs for ${JSON.stringify(list)}`)
    }),
    { numRuns: 2000 },
  )
  t.equal(runs, 2000)
  t.equal(jsonStringArray([]), '[]')
  t.equal(jsonStringArray(null), 'null')
})
