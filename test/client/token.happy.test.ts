import t from 'tap'
import { loadClient } from './build.js'
import { QUOTA_HEADERS, startFakeBroker } from './fake-broker.js'

const { createTokenClient } = await loadClient()

/** A hand-driven clock, in ms, for both the fake broker and the client. */
function fakeClock() {
  let ms = 1_764_000_000_000
  return { now: () => ms, seconds: () => Math.floor(ms / 1000), advance: (s: number) => { ms += s * 1000 } }
}

t.test('POSTs the asked fields as JSON with the Bearer credential', async (t) => {
  const broker = await startFakeBroker(t)
  const client = createTokenClient({
    url: broker.url,
    credentials: async () => 'user-jwt',
    creators: ['streamer1'],
    expireAfter: 600,
    maxWebsockets: 2,
  })
  const token = await client.getToken()
  t.equal(token.token, 'tok-1')
  t.equal(token.expire_after, 600)
  t.same(token.allowed_creators, ['streamer1'])
  t.equal(token.cached, false)
  const [call] = broker.calls
  t.equal(call?.method, 'POST')
  t.equal(call?.headers.authorization, 'Bearer user-jwt')
  t.match(call?.headers['content-type'], /^application\/json/)
  t.same(JSON.parse(call?.body ?? ''), { allowed_creators: ['streamer1'], expire_after: 600, max_websockets: 2 })
})

t.test('sends only the fields given, and no Authorization without credentials', async (t) => {
  const broker = await startFakeBroker(t)
  await createTokenClient({ url: broker.url }).getToken()
  t.equal(broker.calls[0]?.headers.authorization, undefined)
  t.same(JSON.parse(broker.calls[0]?.body ?? ''), {})
})

t.test('reuses the token until renewBeforeSeconds before expires_at', async (t) => {
  const clock = fakeClock()
  const broker = await startFakeBroker(t, { nowSeconds: clock.seconds, lifetime: 600 })
  const client = createTokenClient({ url: broker.url, now: clock.now, renewBeforeSeconds: 30 })
  const first = await client.getToken()
  clock.advance(569)
  t.equal(await client.getToken(), first, 'still 31 s left: reused')
  t.equal(broker.calls.length, 1)
  clock.advance(2)
  t.equal((await client.getToken()).token, 'tok-2', '29 s left: renewed')
  t.equal(broker.calls.length, 2)
})

t.test('never keeps a token past half its lifetime', async (t) => {
  const clock = fakeClock()
  const broker = await startFakeBroker(t, { nowSeconds: clock.seconds, lifetime: 40 })
  const client = createTokenClient({ url: broker.url, now: clock.now, renewBeforeSeconds: 30 })
  await client.getToken()
  clock.advance(19)
  t.equal((await client.getToken()).token, 'tok-1')
  clock.advance(2)
  t.equal((await client.getToken()).token, 'tok-2', 'past half of 40 s: renewed although 19 s are left')
})

t.test('concurrent callers share one request', async (t) => {
  const broker = await startFakeBroker(t)
  const client = createTokenClient({ url: broker.url })
  const tokens = await Promise.all([client.getToken(), client.getToken(), client.getToken()])
  t.equal(broker.calls.length, 1)
  t.same(tokens.map((x) => x.token), ['tok-1', 'tok-1', 'tok-1'])
})

t.test('one caller aborting does not cancel the request the others wait for', async (t) => {
  const broker = await startFakeBroker(t)
  const client = createTokenClient({ url: broker.url })
  const controller = new AbortController()
  const aborted = client.getToken({ signal: controller.signal })
  const kept = client.getToken()
  controller.abort()
  await t.rejects(aborted, { name: 'BrokerClientError', code: 'ABORTED' })
  t.equal((await kept).token, 'tok-1')
  t.equal(broker.calls.length, 1)
})

t.test('invalidate() and forceRefresh ask the broker again', async (t) => {
  const broker = await startFakeBroker(t)
  const client = createTokenClient({ url: broker.url })
  await client.getToken()
  client.invalidate()
  t.equal((await client.getToken()).token, 'tok-2')
  t.equal((await client.getToken({ forceRefresh: true })).token, 'tok-3')
  t.equal((await client.getToken()).token, 'tok-3', 'the refreshed token is held')
  t.equal(broker.calls.length, 3)
})

t.test('records the upstream and broker rate-limit headers', async (t) => {
  const broker = await startFakeBroker(t)
  const client = createTokenClient({ url: broker.url })
  t.same(client.quota, {
    upstream: { limit: null, remaining: null, reset: null },
    broker: { limit: null, remaining: null, reset: null },
  })
  await client.getToken()
  t.same(client.quota, {
    upstream: { limit: 30, remaining: 29, reset: Number(QUOTA_HEADERS['x-ratelimit-reset']) },
    broker: { limit: 60, remaining: 59, reset: 42 },
  })
})

t.test('the token handed out is frozen, so one caller cannot spoil it for the others', async (t) => {
  const broker = await startFakeBroker(t)
  const token = await createTokenClient({ url: broker.url }).getToken()
  t.ok(Object.isFrozen(token))
})

t.test('a refused token is reported with rejected_token and never served again', async (t) => {
  const broker = await startFakeBroker(t)
  const client = createTokenClient({ url: broker.url, creators: ['streamer1'] })
  const bodies = () => broker.calls.map((c) => JSON.parse(c.body))
  t.equal((await client.getToken()).token, 'tok-1')
  t.equal((await client.getToken({ rejectedToken: 'tok-1' })).token, 'tok-2')
  t.same(bodies()[1], { allowed_creators: ['streamer1'], rejected_token: 'tok-1' })
  t.equal((await client.getToken()).token, 'tok-2', 'the new token is held')

  t.equal((await client.getToken({ rejectedToken: 'tok-1' })).token, 'tok-2', 'an older token refused: the held one is served')
  t.equal(broker.calls.length, 2, 'without asking the broker')

  // Two sockets refused with one token: one request reports it, both get its answer.
  const [a, b] = await Promise.all([client.getToken({ rejectedToken: 'tok-2' }), client.getToken({ rejectedToken: 'tok-2' })])
  t.equal(a.token, 'tok-3')
  t.equal(b, a)
  t.equal(broker.calls.length, 3)
  t.same(bodies()[2], { allowed_creators: ['streamer1'], rejected_token: 'tok-2' })
})

t.test('a request already in flight does not stand in for one reporting a refused token', async (t) => {
  const broker = await startFakeBroker(t)
  const client = createTokenClient({ url: broker.url })
  const plain = client.getToken()
  await broker.received.take() // the plain request reached the broker (it may well answer the refused token)
  const reported = client.getToken({ rejectedToken: 'tok-0' })
  t.equal((await plain).token, 'tok-1')
  t.equal((await reported).token, 'tok-2')
  t.same(broker.calls.map((c) => JSON.parse(c.body)), [{}, { rejected_token: 'tok-0' }])
})
