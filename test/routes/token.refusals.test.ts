import { once } from 'node:events'
import { request } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { ERRORS } from '../../src/errors.js'
import { acme, buildBroker, rememberSecret } from '../helpers/broker.js'

const ORIGIN = 'https://app.acme.example'

interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: any
}

/** A real request over a real socket: Node's own parser (and its header limit) is in the way, as in production. */
function post(port: number, path: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let text = ''
      res.setEncoding('utf8').on('data', (d: string) => (text += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text === '' ? undefined : JSON.parse(text) }))
    })
    req.on('error', reject)
    req.end('{}')
  })
}

/** Writes raw bytes and reads until the server closes: for requests no HTTP client would send. */
async function raw(port: number, bytes: string, host = '127.0.0.1'): Promise<string> {
  const socket = connect(port, host)
  let text = ''
  socket.setEncoding('utf8').on('data', (d: string) => (text += d))
  socket.write(bytes)
  await once(socket, 'close')
  return text
}

async function listening(t: Test) {
  const b = await buildBroker(t, { tenants: [acme()], config: { adminToken: 'admin-token-for-tests-0123456789' } })
  await b.app.listen({ host: '127.0.0.1', port: 0 })
  return { b, port: (b.app.server.address() as AddressInfo).port }
}

const contractBody = (code: keyof typeof ERRORS) => ({ status_code: ERRORS[code].status, code, message: String })

t.test('a broken percent-encoding in the path is a contract 400, by inject and over a socket', async (t) => {
  const { b, port } = await listening(t)
  const injected = await b.app.inject({ method: 'POST', url: '/v1/token%E0%A4%A' })
  t.equal(injected.statusCode, 400)
  t.match(injected.headers['content-type'], /^application\/json/)
  t.same(Object.keys(injected.json()).sort(), ['code', 'message', 'status_code'])
  t.match(injected.json(), contractBody('BAD_REQUEST'))
  const real = await post(port, '/v1/token%E0%A4%A', {})
  t.equal(real.status, 400)
  t.match(real.body, contractBody('BAD_REQUEST'))
  t.notMatch(JSON.stringify(real.body), /FST_ERR|statusCode|error/, 'not Fastify’s own body')
})

t.test('an over-long path parameter is a contract answer too (no route matches it)', async (t) => {
  const { b } = await listening(t)
  const res = await b.app.inject({
    method: 'GET',
    url: `/admin/tenants/${'x'.repeat(400)}`,
    headers: { authorization: 'Bearer admin-token-for-tests-0123456789' },
  })
  t.equal(res.statusCode, 404)
  t.match(res.json(), contractBody('NOT_FOUND'))
})

t.test('a credential over 8 KiB but headers under 32 KiB: 401 with the CORS headers a browser needs', async (t) => {
  const { port } = await listening(t)
  for (const size of [9 * 1024, 20 * 1024, 30 * 1024]) {
    const credential = 'A'.repeat(size)
    rememberSecret(credential)
    const res = await post(port, '/v1/token', { authorization: `Bearer ${credential}`, origin: ORIGIN })
    t.equal(res.status, 401, `${size} bytes: 401, not Node's 431`)
    t.match(res.body, contractBody('UNAUTHENTICATED'))
    t.equal(res.headers['access-control-allow-origin'], ORIGIN, 'the browser may read it')
    t.match(res.headers['access-control-expose-headers'], /Retry-After/)
    t.match(res.headers['www-authenticate'], /^Bearer .*error="invalid_token"/)
  }
})

t.test('headers over 32 KiB in all: 431 HEADERS_TOO_LARGE in the contract body, readable from any origin', async (t) => {
  const { port } = await listening(t)
  const res = await post(port, '/v1/token', { authorization: `Bearer ${'A'.repeat(33 * 1024)}`, origin: ORIGIN })
  t.equal(res.status, 431)
  t.match(res.headers['content-type'], /^application\/json/)
  t.same(res.body, { status_code: 431, code: 'HEADERS_TOO_LARGE', message: ERRORS.HEADERS_TOO_LARGE.message })
  t.equal(res.headers['access-control-allow-origin'], '*')
  t.equal(res.headers['cache-control'], 'no-store')
  // Many small headers count too: the limit is on all of them together.
  const many: Record<string, string> = {}
  for (let i = 0; i < 40; i++) many[`x-filler-${i}`] = 'y'.repeat(1000)
  t.equal((await post(port, '/healthz', many)).status, 431)
})

t.test('what Node cannot parse at all is a contract 400', async (t) => {
  const { port } = await listening(t)
  const text = await raw(port, 'NOT HTTP AT ALL\r\n\r\n')
  t.match(text, /^HTTP\/1\.1 400 /)
  const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4))
  t.match(body, contractBody('BAD_REQUEST'))
})

// Node answers these two itself, with an empty body, unless told otherwise (RFC 9112 §3.2, RFC 9110 §10.1.1).
t.test('an HTTP/1.1 request without Host is a contract 400; HTTP/1.0 needs none', async (t) => {
  const { port } = await listening(t)
  const text = await raw(port, 'GET /healthz HTTP/1.1\r\n\r\n')
  t.match(text, /^HTTP\/1\.1 400 /)
  t.match(text, /\r\ncontent-type: application\/json/i)
  t.match(text, /\r\nconnection: close\r\n/i)
  t.match(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)), contractBody('BAD_REQUEST'))
  const old = await raw(port, 'GET /healthz HTTP/1.0\r\n\r\n')
  t.match(old, /^HTTP\/1\.1 200 /, 'HTTP/1.0 has no Host requirement')
  const withHost = await raw(port, 'GET /healthz HTTP/1.1\r\nHost: broker\r\nConnection: close\r\n\r\n')
  t.match(withHost, /^HTTP\/1\.1 200 /)
})

t.test('an Expect other than 100-continue is a contract 417; 100-continue is met', async (t) => {
  const { port } = await listening(t)
  const text = await raw(port, 'GET /healthz HTTP/1.1\r\nHost: broker\r\nExpect: foo\r\n\r\n')
  t.match(text, /^HTTP\/1\.1 417 /)
  t.same(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)), { status_code: 417, code: 'EXPECTATION_FAILED', message: ERRORS.EXPECTATION_FAILED.message })
  const body = '{}'
  const cont = await raw(port, `POST /v1/token HTTP/1.1\r\nHost: broker\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n${body}`)
  t.match(cont, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 401 /, 'told to go on, then answered (no credential: 401)')
})

// Headers that never end: Node's headers timeout, checked each second (not Node's default 30 s), in the contract's body.
t.test('headers not received in time: a contract 408 soon after the headers timeout', async (t) => {
  const { b, port } = await listening(t)
  t.equal(b.app.server.headersTimeout, 10_000, 'the production bound is 10 s')
  b.app.server.headersTimeout = 500
  const started = Date.now()
  const text = await raw(port, 'GET /healthz HTTP/1.1\r\nHost: broker\r\nX-Slow: ')
  const tookMs = Date.now() - started
  t.match(text, /^HTTP\/1\.1 408 /)
  t.match(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)), contractBody('REQUEST_TIMEOUT'))
  t.ok(tookMs < 500 + 1000 + 1500, `answered ${tookMs} ms after the request began (timeout 500 ms, checked each 1000 ms)`)
})

t.test('CONNECT (a proxy tunnel) is answered: a contract 404, not a dropped connection', async (t) => {
  const { port } = await listening(t)
  const text = await raw(port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n')
  t.match(text, /^HTTP\/1\.1 404 Not Found\r\n/)
  t.match(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)), contractBody('NOT_FOUND'))
})

// Fastify would open a second server for another address of a host name, without these settings: it opens none.
t.test('listening on a host name: one server, the one with every setting (headers timeout, Host check, refusals)', async (t) => {
  const b = await buildBroker(t, { tenants: [acme()] })
  await b.app.listen({ host: 'localhost', port: 0 })
  const addresses = b.app.addresses()
  t.equal(addresses.length, 1, `one address: ${JSON.stringify(addresses)}`)
  t.equal(b.app.server.headersTimeout, 10_000)
  const { port, address } = b.app.server.address() as AddressInfo
  const text = await raw(port, 'GET /healthz HTTP/1.1\r\n\r\n', address)
  t.match(text, /^HTTP\/1\.1 400 /)
})
