import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { clientDir, loadClient } from './build.js'

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

t.test('createTokenClient requires a url', async (t) => {
  t.throws(() => client.createTokenClient({} as never), TypeError)
})
