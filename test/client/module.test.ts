import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { clientDir, loadClient } from './build.js'
import { startFakeBroker } from './fake-broker.js'

const client = await loadClient()
const js = await readFile(join(clientDir, 'index.js'), 'utf8')

t.test('the module a browser imports is one file with no imports and no Node APIs', async (t) => {
  t.notMatch(js, /^\s*import\s/m, 'no import statements')
  t.notMatch(js, /^\s*export\s[^;]*\sfrom\s/m, 'no re-exports')
  t.notMatch(js, /\bimport\(|\brequire\(|\bprocess\.|\bBuffer\b|['"]node:/, 'no dynamic imports or Node APIs')
})

t.test('exports exactly the documented API', async (t) => {
  t.same(Object.keys(client).sort(), ['BrokerClientError', 'createTokenClient'])
  const err = new client.BrokerClientError('RATE_LIMITED', 'slow down', 429, 5)
  t.ok(err instanceof Error)
  t.match(err, { name: 'BrokerClientError', code: 'RATE_LIMITED', status: 429, retryAfter: 5, message: 'slow down' })
})

t.test('without url, the module must have come from a broker (here it is a file: a TypeError saying so)', async (t) => {
  t.throws(() => client.createTokenClient({}), { name: 'TypeError', message: /options\.url is required when this module was not loaded from a broker/ })
  t.throws(() => client.createTokenClient(), TypeError)
  t.throws(() => client.createTokenClient({ url: '' }), TypeError)
  t.match(js, /new URL\(TOKEN_PATH, import\.meta\.url\)|new URL\(['"]\/v1\/token['"], import\.meta\.url\)/, 'the endpoint comes from the module URL')
  // A module URL that is no base for a path (data:, blob:; a classic-script bundle has none): the same TypeError, not URL's own.
  const inline = (await import(`data:text/javascript;base64,${Buffer.from(js).toString('base64')}`)) as typeof client
  t.throws(() => inline.createTokenClient({}), { name: 'TypeError', message: /options\.url is required when this module was not loaded from a broker/ })
})

t.test('a url with no path means that origin’s /v1/token; any other url is used as given', async (t) => {
  const broker = await startFakeBroker(t)
  const origin = new URL(broker.url).origin
  for (const [url, path] of [
    [origin, '/v1/token'],
    [`${origin}/`, '/v1/token'],
    [`${origin}/v1/token`, '/v1/token'],
    [`${origin}/broker/v1/token`, '/broker/v1/token'],
    [`${origin}/?tenant=x`, '/?tenant=x'],
  ] as const) {
    await client.createTokenClient({ url }).getToken()
    t.equal(broker.calls.at(-1)?.path, path, url)
  }
})
