import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { loadClient } from './build.js'
import { QUOTA_HEADERS, errorAnswer, startFakeBroker } from './fake-broker.js'

const { createTokenClient, BrokerClientError } = await loadClient()

t.test('an error body becomes a BrokerClientError with the contract code', async (t) => {
  const broker = await startFakeBroker(t)
  broker.answer(errorAnswer(401, 'UNAUTHENTICATED'))
  const client = createTokenClient({ url: broker.url })
  const err = await client.getToken().catch((e: unknown) => e)
  t.ok(err instanceof BrokerClientError)
  t.match(err, { code: 'UNAUTHENTICATED', status: 401, retryAfter: null, message: 'UNAUTHENTICATED from the fake broker' })
  t.equal(broker.calls.length, 1, 'a 401 is not retried')
})

t.test('waits out a short Retry-After on 429, then succeeds', async (t) => {
  const broker = await startFakeBroker(t)
  broker.answer(errorAnswer(429, 'UPSTREAM_RATE_LIMITED', { 'retry-after': '1', ...QUOTA_HEADERS, 'x-ratelimit-remaining': '0' }))
  const client = createTokenClient({ url: broker.url })
  const started = Date.now()
  const token = await client.getToken()
  t.equal(token.token, 'tok-1')
  t.equal(broker.calls.length, 2)
  t.ok(Date.now() - started >= 950, 'waited about a second')
  t.equal(client.quota.upstream.remaining, 29, 'quota from the latest answer')
})

t.test('records the quota of error answers too', async (t) => {
  const broker = await startFakeBroker(t)
  broker.answer(errorAnswer(429, 'UPSTREAM_RATE_LIMITED', { 'retry-after': '120', ...QUOTA_HEADERS, 'x-ratelimit-remaining': '0' }))
  const client = createTokenClient({ url: broker.url })
  await t.rejects(client.getToken(), { code: 'UPSTREAM_RATE_LIMITED', status: 429, retryAfter: 120 })
  t.equal(client.quota.upstream.remaining, 0)
  t.equal(client.quota.broker.limit, 60)
})

t.test('a Retry-After longer than maxRetryWaitSeconds throws at once', async (t) => {
  const broker = await startFakeBroker(t)
  broker.answer(errorAnswer(503, 'UPSTREAM_UNAVAILABLE', { 'retry-after': '31' }))
  await t.rejects(createTokenClient({ url: broker.url }).getToken(), { code: 'UPSTREAM_UNAVAILABLE', status: 503, retryAfter: 31 })
  t.equal(broker.calls.length, 1)
})

t.test('a 503 without Retry-After is not retried', async (t) => {
  const broker = await startFakeBroker(t)
  broker.answer(errorAnswer(503, 'UPSTREAM_UNAVAILABLE'))
  await t.rejects(createTokenClient({ url: broker.url }).getToken(), { code: 'UPSTREAM_UNAVAILABLE', retryAfter: null })
  t.equal(broker.calls.length, 1)
})

t.test('gives up after maxRetries', async (t) => {
  const broker = await startFakeBroker(t)
  const busy = errorAnswer(503, 'UPSTREAM_UNAVAILABLE', { 'retry-after': '0' })
  broker.answer(busy, busy, busy, busy)
  await t.rejects(createTokenClient({ url: broker.url, maxRetries: 2 }).getToken(), { code: 'UPSTREAM_UNAVAILABLE' })
  t.equal(broker.calls.length, 3, 'the first try and two retries')
})

t.test('aborting while waiting out Retry-After rejects with ABORTED and sends nothing more', async (t) => {
  const broker = await startFakeBroker(t)
  broker.answer(errorAnswer(429, 'RATE_LIMITED', { 'retry-after': '1' }))
  const client = createTokenClient({ url: broker.url })
  const controller = new AbortController()
  const started = Date.now()
  const pending = client.getToken({ signal: controller.signal })
  await broker.received.take()
  setTimeout(() => controller.abort(), 200)
  await t.rejects(pending, { name: 'BrokerClientError', code: 'ABORTED', status: 0 })
  t.ok(Date.now() - started < 900, 'rejected without waiting out Retry-After')
  // The cancelled wait must not fire a retry of its own.
  await new Promise((resolve) => setTimeout(resolve, 1200))
  t.equal(broker.calls.length, 1)
  t.equal((await client.getToken()).token, 'tok-1', 'the next call starts a new request')
})

t.test('an already aborted signal rejects without a request', async (t) => {
  const broker = await startFakeBroker(t)
  await t.rejects(createTokenClient({ url: broker.url }).getToken({ signal: AbortSignal.abort() }), { code: 'ABORTED' })
  t.equal(broker.calls.length, 0)
})

t.test('an unreachable broker is a NETWORK_ERROR', async (t) => {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  await t.rejects(createTokenClient({ url: `http://127.0.0.1:${port}/v1/token` }).getToken(), { code: 'NETWORK_ERROR', status: 0 })
})

t.test('answers outside the contract are BAD_RESPONSE', async (t) => {
  const broker = await startFakeBroker(t)
  broker.answer(
    { status: 502, raw: '<html>Bad Gateway</html>' },
    { status: 200, raw: 'not json' },
    { status: 200, body: { status_code: 0, data: { expires_at: 1 } } },
  )
  const client = createTokenClient({ url: broker.url })
  await t.rejects(client.getToken(), { code: 'BAD_RESPONSE', status: 502 })
  await t.rejects(client.getToken(), { code: 'BAD_RESPONSE', status: 200 })
  await t.rejects(client.getToken(), { code: 'BAD_RESPONSE', status: 200 }, 'no token in data')
})

t.test('a failed request is not cached: the next call asks again', async (t) => {
  const broker = await startFakeBroker(t)
  broker.answer(errorAnswer(403, 'CREATOR_NOT_ALLOWED'))
  const client = createTokenClient({ url: broker.url })
  const both = await Promise.allSettled([client.getToken(), client.getToken()])
  t.same(both.map((r) => r.status), ['rejected', 'rejected'])
  t.equal(broker.calls.length, 1, 'concurrent callers share the failure too')
  t.equal((await client.getToken()).token, 'tok-1')
})
