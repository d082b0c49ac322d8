import type { IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { WebSocket, WebSocketServer } from 'ws'
import { loadClient, type ClientModule } from './build.js'
import { errorAnswer, startFakeBroker, type HasTeardown } from './fake-broker.js'
import { queue, type Queue } from './queue.js'

const { createTokenClient, BrokerClientError } = await loadClient()

interface Upstream {
  url: string
  /** Each socket the client opened, with the query it opened it with. */
  connections: Queue<{ socket: WebSocket; query: URLSearchParams }>
}

/** A stand-in for wss://api.tik.tools on 127.0.0.1:0; closed at teardown. */
async function startUpstream(t: HasTeardown): Promise<Upstream> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise<void>((resolve) => wss.once('listening', resolve))
  const connections: Upstream['connections'] = queue()
  wss.on('connection', (socket: WebSocket, req: IncomingMessage) => {
    connections.push({ socket, query: new URL(req.url ?? '/', 'ws://x').searchParams })
  })
  t.teardown(() => new Promise<void>((resolve) => {
    for (const client of wss.clients) client.terminate()
    wss.close(() => resolve())
  }))
  return { url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, connections }
}

type Entry =
  | { kind: 'event'; event: string; data: unknown }
  | { kind: 'open' }
  | { kind: 'close'; code: number; reason: string; willReconnect: boolean }
  | { kind: 'error'; err: Error }

/** LiveHandlers that log every call; `take(kind)` waits for the next one of that kind. */
function recorder() {
  const log: Entry[] = []
  const byKind = new Map<Entry['kind'], Queue<Entry>>()
  const of = (kind: Entry['kind']) => {
    let q = byKind.get(kind)
    if (!q) byKind.set(kind, (q = queue()))
    return q
  }
  const push = (entry: Entry) => { log.push(entry); of(entry.kind).push(entry) }
  const handlers: ClientModule.LiveHandlers = {
    onEvent: (event, data) => push({ kind: 'event', event, data }),
    onOpen: () => push({ kind: 'open' }),
    onClose: (code, reason, willReconnect) => push({ kind: 'close', code, reason, willReconnect }),
    onError: (err) => push({ kind: 'error', err }),
  }
  return {
    log,
    handlers,
    take: <K extends Entry['kind']>(kind: K) => of(kind).take() as Promise<Extract<Entry, { kind: K }>>,
  }
}

async function setup(t: HasTeardown) {
  const broker = await startFakeBroker(t)
  const upstream = await startUpstream(t)
  const client = createTokenClient({
    url: broker.url,
    credentials: () => 'user-jwt',
    creators: ['streamer1'],
    wsUrl: upstream.url,
    WebSocket: WebSocket as unknown as ClientModule.TokenClientOptions['WebSocket'],
  })
  const rec = recorder()
  return { broker, upstream, client, rec }
}

/** Long enough for an immediate reconnect (4003) to have shown up. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 300))

t.test('streams events, reconnects with a fresh token on 4003, stops on 4004', async (t) => {
  const { broker, upstream, client, rec } = await setup(t)
  const live = client.connect('streamer1', rec.handlers)
  t.teardown(() => live.close())

  const first = await upstream.connections.take()
  t.equal(first.query.get('uniqueId'), 'streamer1')
  t.equal(first.query.get('jwtKey'), 'tok-1')
  await rec.take('open')
  t.ok(live.socket, 'the socket is exposed while open')
  first.socket.send(JSON.stringify({ event: 'roomInfo', data: { roomId: '7', title: 'hello' } }))
  t.same(await rec.take('event'), { kind: 'event', event: 'roomInfo', data: { roomId: '7', title: 'hello' } })

  first.socket.close(4003, 'token expired')
  const second = await upstream.connections.take()
  t.same(await rec.take('close'), { kind: 'close', code: 4003, reason: 'token expired', willReconnect: true })
  t.equal(second.query.get('jwtKey'), 'tok-2', 'a fresh token, not the rejected one')
  t.equal(broker.calls.length, 2)
  t.same(JSON.parse(broker.calls[1]?.body ?? ''), { allowed_creators: ['streamer1'], rejected_token: 'tok-1' }, 'the refused token is reported')
  t.same(JSON.parse(broker.calls[0]?.body ?? ''), { allowed_creators: ['streamer1'] }, 'the first request reports none')
  await rec.take('open')

  second.socket.close(4004, 'creator not allowed')
  t.same(await rec.take('close'), { kind: 'close', code: 4004, reason: 'creator not allowed', willReconnect: false })
  await settle()
  t.equal(upstream.connections.size, 2, 'no reconnect after 4004')
  t.equal(broker.calls.length, 2)
  t.equal(live.socket, null)
})

t.test('after 4003 every retry of the token request still reports the refused token', async (t) => {
  const { broker, upstream, client, rec } = await setup(t)
  const live = client.connect('streamer1', rec.handlers)
  t.teardown(() => live.close())
  const first = await upstream.connections.take()
  await rec.take('open')
  broker.answer(errorAnswer(503, 'UPSTREAM_UNAVAILABLE', { 'retry-after': '0' }))
  first.socket.close(4003, 'token expired')
  const second = await upstream.connections.take()
  t.equal(second.query.get('jwtKey'), 'tok-2')
  t.same(
    broker.calls.map((c) => JSON.parse(c.body).rejected_token),
    [undefined, 'tok-1', 'tok-1'],
    'the 503 and its retry both carry rejected_token',
  )
})

t.test('a 4003 after transient failures asks for a fresh token at once, not after their backoff', async (t) => {
  const { broker, upstream, client, rec } = await setup(t)
  const live = client.connect('streamer1', rec.handlers)
  t.teardown(() => live.close())
  const first = await upstream.connections.take()
  await rec.take('open')
  // An abnormal close (tik.tools restarting, say): the next one would wait 1–2 s.
  first.socket.terminate()
  t.match(await rec.take('close'), { code: 1006, willReconnect: true })
  const third = await upstream.connections.take()
  // Back, it refuses the old token: the next token request leaves at once, with the refused token.
  const refused = Date.now()
  third.socket.close(4003, 'token expired')
  const fourth = await upstream.connections.take()
  t.ok(Date.now() - refused < 400, `asked again at once (${Date.now() - refused} ms), not after the backoff of 1–2 s`)
  t.equal(fourth.query.get('jwtKey'), 'tok-2')
  t.equal(JSON.parse(broker.calls.at(-1)?.body ?? '').rejected_token, 'tok-1')
  // A second 4003 with no frame between backs off.
  await rec.take('open')
  const again = Date.now()
  fourth.socket.close(4003, 'token expired')
  await upstream.connections.take()
  t.ok(Date.now() - again >= 450, 'a repeated refusal waits')
})

t.test('4000 (bad request) does not reconnect either', async (t) => {
  const { upstream, client, rec } = await setup(t)
  const live = client.connect('streamer1', rec.handlers)
  t.teardown(() => live.close())
  const conn = await upstream.connections.take()
  conn.socket.close(4000, 'bad request')
  t.same(await rec.take('close'), { kind: 'close', code: 4000, reason: 'bad request', willReconnect: false })
  await settle()
  t.equal(upstream.connections.size, 1)
})

t.test('an abnormal close (1006) reconnects after a backoff with the same token', async (t) => {
  const { broker, upstream, client, rec } = await setup(t)
  const live = client.connect('streamer1', rec.handlers)
  t.teardown(() => live.close())
  const first = await upstream.connections.take()
  await rec.take('open')
  const dropped = Date.now()
  first.socket.terminate()
  t.match(await rec.take('close'), { code: 1006, willReconnect: true })
  const second = await upstream.connections.take()
  t.ok(Date.now() - dropped >= 450, 'waited about half a second to a second')
  t.equal(second.query.get('jwtKey'), 'tok-1', 'the token was still good')
  t.equal(broker.calls.length, 1)
})

t.test('4005 (stream ended) reconnects after a backoff', async (t) => {
  const { upstream, client, rec } = await setup(t)
  const live = client.connect('streamer1', rec.handlers)
  t.teardown(() => live.close())
  const first = await upstream.connections.take()
  first.socket.close(4005, 'stream ended')
  t.match(await rec.take('close'), { code: 4005, willReconnect: true })
  await upstream.connections.take()
  await rec.take('open')
})

t.test('close() closes the socket and stops reconnecting', async (t) => {
  const { upstream, client, rec } = await setup(t)
  const live = client.connect('streamer1', rec.handlers)
  const conn = await upstream.connections.take()
  await rec.take('open')
  const serverSaw = new Promise<number>((resolve) => conn.socket.once('close', (code: number) => resolve(code)))
  live.close()
  t.match(await rec.take('close'), { code: 1000, willReconnect: false })
  t.equal(await serverSaw, 1000)
  await settle()
  t.equal(upstream.connections.size, 1)
  t.equal(live.socket, null)
})

t.test('close() while the token is on its way opens nothing', async (t) => {
  const { broker, upstream, client, rec } = await setup(t)
  const live = client.connect('streamer1', rec.handlers)
  await broker.received.take()
  live.close()
  await settle()
  t.equal(upstream.connections.size, 0)
  t.same(rec.log, [], 'no callback after close()')
})

t.test('an aborted signal closes the connection', async (t) => {
  const { upstream, client, rec } = await setup(t)
  const controller = new AbortController()
  client.connect('streamer1', rec.handlers, { signal: controller.signal })
  await upstream.connections.take()
  await rec.take('open')
  controller.abort()
  t.match(await rec.take('close'), { code: 1000, willReconnect: false })
})

t.test('a token error that retrying cannot fix ends the connection', async (t) => {
  const { broker, upstream, client, rec } = await setup(t)
  broker.answer(errorAnswer(403, 'CREATOR_NOT_ALLOWED'))
  const live = client.connect('streamer1', rec.handlers)
  const { err } = await rec.take('error')
  t.ok(err instanceof BrokerClientError)
  t.match(err, { code: 'CREATOR_NOT_ALLOWED', status: 403 })
  await settle()
  t.equal(upstream.connections.size, 0)
  t.equal(broker.calls.length, 1)
  t.equal(live.socket, null)
})

t.test('a transient token error is retried with backoff', async (t) => {
  const { broker, upstream, client, rec } = await setup(t)
  broker.answer(errorAnswer(503, 'UPSTREAM_UNAVAILABLE'))
  const live = client.connect('streamer1', rec.handlers)
  t.teardown(() => live.close())
  t.match((await rec.take('error')).err, { code: 'UPSTREAM_UNAVAILABLE' })
  const conn = await upstream.connections.take()
  t.equal(conn.query.get('jwtKey'), 'tok-1')
  t.equal(broker.calls.length, 2)
})

t.test('frames that are not JSON are reported; binary frames are ignored', async (t) => {
  const { upstream, client, rec } = await setup(t)
  const live = client.connect('streamer1', rec.handlers)
  t.teardown(() => live.close())
  const conn = await upstream.connections.take()
  await rec.take('open')
  conn.socket.send(Buffer.from([1, 2, 3]))
  conn.socket.send('not json')
  conn.socket.send(JSON.stringify({ event: 'chat', data: { comment: 'hi' } }))
  t.match((await rec.take('error')).err, { code: 'BAD_RESPONSE' })
  t.same(await rec.take('event'), { kind: 'event', event: 'chat', data: { comment: 'hi' } })
  t.equal(rec.log.filter((e) => e.kind === 'event').length, 1)
})

t.test('connect() without any WebSocket class throws at once', async (t) => {
  const broker = await startFakeBroker(t)
  const client = createTokenClient({ url: broker.url })
  t.throws(() => client.connect('streamer1'), TypeError)
  t.equal(broker.calls.length, 0)
})
