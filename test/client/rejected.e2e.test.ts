import type { IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { WebSocket, WebSocketServer } from 'ws'
import { acme, buildBroker, rememberSecret, userJwt } from '../helpers/broker.js'
import { loadClient, type ClientModule } from './build.js'
import { queue } from './queue.js'

const { createTokenClient } = await loadClient()

t.test('the bundled client and the real broker: after a 4003 the socket reopens with a new token, minted once', async (t) => {
  const b = await buildBroker(t, { tenants: [acme({ cors: { origins: [] } })] })
  await b.app.listen({ host: '127.0.0.1', port: 0 })
  const brokerUrl = `http://127.0.0.1:${(b.app.server.address() as AddressInfo).port}`

  // tik.tools' socket, standing in so that the test decides when a token is refused.
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise<void>((resolve) => wss.once('listening', resolve))
  const connections = queue<{ socket: WebSocket; jwtKey: string | null }>()
  wss.on('connection', (socket: WebSocket, req: IncomingMessage) => {
    connections.push({ socket, jwtKey: new URL(req.url ?? '/', 'ws://x').searchParams.get('jwtKey') })
  })
  t.teardown(() => new Promise<void>((resolve) => {
    for (const c of wss.clients) c.terminate()
    wss.close(() => resolve())
  }))

  const jwt = await userJwt('alice')
  const client = createTokenClient({
    url: brokerUrl,
    credentials: () => jwt,
    creators: ['a1'],
    wsUrl: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`,
    WebSocket: WebSocket as unknown as ClientModule.TokenClientOptions['WebSocket'],
  })
  const closes: number[] = []
  const live = client.connect('a1', { onClose: (code) => void closes.push(code) })
  t.teardown(() => live.close())

  const first = await connections.take()
  t.ok(first.jwtKey, 'the first socket carries a token from the broker')
  rememberSecret(first.jwtKey as string)
  t.equal(b.sim.stats.mints, 1)
  first.socket.close(4003, 'token refused')
  const second = await connections.take()
  rememberSecret(second.jwtKey as string)
  t.not(second.jwtKey, first.jwtKey, 'a new token, not the refused one (the broker dropped it from its cache)')
  t.equal(b.sim.stats.mints, 2, 'exactly one new mint')
  t.same(closes, [4003])

  const again = await b.token(jwt, { allowed_creators: ['a1'] })
  t.equal(again.body.data.token, second.jwtKey, 'the new token is the one cached now')
  t.equal(again.body.data.cached, true)
})
