import http from 'node:http'
import { Writable } from 'node:stream'
import t from 'tap'
import { buildApp } from '../../src/app.js'
import { shutdownSignal } from '../../src/plugins/graceful-close.js'
import { createLogger } from '../../src/logger.js'
import { startSimulator } from '../../src/simulator/index.js'
import { API_KEY, acme, configFor, userJwt } from '../helpers/broker.js'

// Shutdown while keep-alive clients hammer cache hits: answers the token route holds to the end of
// their turn must still close their connections, or app.close() waits for keepAliveTimeout (65 s).
t.test('a shutdown under keep-alive load closes every connection at once', async (t) => {
  const sim = await startSimulator({ apiKeys: [API_KEY] })
  t.teardown(() => sim.close())
  const quiet = createLogger('silent', new Writable({ write: (_c, _e, cb) => cb() }))
  const app = await buildApp(configFor(sim.url, [acme({ limits: { perSubjectPerMinute: 1_000_000, perTenantPerMinute: 1_000_000 } })]), { logger: quiet })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as { port: number }
  const jwt = await userJwt('u1')
  let stop = false
  const statuses = new Map<number, number>()
  let closedByServer = 0
  const bodies = new Set<string>()
  // Shutdown begins inside an I/O callback (as SIGTERM's handler or a socket event would), in the
  // same poll phase in which the server reads requests and holds their answers to the turn's end.
  let closeStarted: ((at: number) => void) | undefined
  const closing = new Promise<number>((resolve) => (closeStarted = resolve))
  let shutdown: Promise<void> | undefined
  const worker = async (): Promise<void> => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    while (!stop) {
      const ok = await new Promise<boolean>((resolve) => {
        const req = http.request(
          { host: '127.0.0.1', port, method: 'POST', path: '/v1/token', agent, headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' } },
          (res) => {
            statuses.set(res.statusCode ?? 0, (statuses.get(res.statusCode ?? 0) ?? 0) + 1)
            if (res.statusCode !== 200) res.on('data', (d) => bodies.add(String(d)))
            if (shutdown === undefined && (statuses.get(200) ?? 0) >= 2000) {
              closeStarted?.(performance.now())
              shutdown = app.close()
              // The clients send nothing more but keep their connections, as a pool does: only the server can end them.
              stop = true
            }
            if (res.headers.connection === 'close') closedByServer += 1
            res.resume()
            res.on('end', () => resolve(true))
          },
        )
        req.on('error', () => resolve(false))
        req.end('{"allowed_creators":["a1"]}')
      })
      if (!ok) break
    }
    agent.destroy()
  }
  const workers = Array.from({ length: 50 }, worker)
  const started = await closing
  await Promise.race([
    (async () => {
      while (shutdown === undefined) await new Promise((r) => setImmediate(r))
      await shutdown
    })(),
    new Promise((_, reject) => setTimeout(() => reject(new Error('app.close() still pending after 5 s')), 5000).unref()),
  ])
  const tookMs = performance.now() - started
  stop = true
  await Promise.all(workers)
  t.ok(tookMs < 5000, `app.close() took ${Math.round(tookMs)} ms`)
  t.ok(closedByServer > 0, `answers sent after shutdown began said Connection: close (${closedByServer})`)
  t.same([...statuses.keys()], [200], 'every request that reached the server was answered, closing or not')
  t.same([...bodies], [], "no other body (Fastify's own closing 503 is not the contract's)")
})

// Fastify answers a request it routes while closing with its own 503 body (`return503OnClosing`); the contract
// wants its own body on every answer. A request routed then (a keep-alive client's next request, caught between
// the start of close and the closing of idle connections) is served instead, and says Connection: close.
t.test('a request routed after shutdown began is served in the contract, on a closing connection', async (t) => {
  const sim = await startSimulator({ apiKeys: [API_KEY] })
  t.teardown(() => sim.close())
  const quiet = createLogger('silent', new Writable({ write: (_c, _e, cb) => cb() }))
  const app = await buildApp(configFor(sim.url, [acme()]), { logger: quiet })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as { port: number }
  const jwt = await userJwt('u1')
  const post = (to: number) =>
    new Promise<{ status: number; connection: string | undefined; body: string }>((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port: to, method: 'POST', path: '/v1/token', headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' } },
        (res) => {
          let body = ''
          res.on('data', (d) => (body += String(d)))
          res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body }))
        },
      )
      req.on('error', reject)
      req.end('{"allowed_creators":["a1"]}')
    })
  // A mint in flight holds the server open: close() waits for it while it refuses or serves what else comes.
  sim.setFaults({ latencyMs: 500 })
  const inFlight = post(port)
  await new Promise((r) => setTimeout(r, 100))
  // The same server's request handler, reached while closing, through a connection close() cannot see.
  const front = http.createServer((req, res) => app.routing(req, res))
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve))
  t.teardown(() => front.close())
  const closed = app.close()
  await new Promise((r) => setTimeout(r, 50))
  t.equal(app.closing, true, 'shutdown began')
  sim.setFaults({ latencyMs: 0 })
  const late = await post((front.address() as { port: number }).port)
  t.equal(late.status, 200, `served: ${late.body}`)
  t.match(JSON.parse(late.body), { status_code: 0, data: { cached: false } })
  t.equal(late.connection, 'close', 'and its connection closes')
  t.equal((await inFlight).status, 200, 'the request in flight finished too')
  await closed
})

// The response class alone, on a plain Node server: every answer whose head is written after begin() closes its
// connection, whether the head is written explicitly (as Fastify does) or implicitly by end().
t.test("shutdownSignal's responses keep connections alive until shutdown begins, then close them", async (t) => {
  const shutdown = shutdownSignal()
  const server = http.createServer({ ServerResponse: shutdown.ServerResponse }, (req, res) => {
    if (req.url === '/implicit') return void res.end('i')
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1' })
    res.end('e')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  const { port } = server.address() as { port: number }
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const get = (path: string) =>
    new Promise<{ connection: string | undefined; socketClosed: Promise<unknown> }>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
        const socketClosed = new Promise((r) => res.socket.once('close', r))
        res.resume()
        res.on('end', () => resolve({ connection: res.headers.connection, socketClosed }))
      })
      req.on('error', reject)
    })
  for (const path of ['/explicit', '/implicit']) t.equal((await get(path)).connection, 'keep-alive', `${path}: kept alive before`)
  t.equal(shutdown.closing, false)
  shutdown.begin()
  t.equal(shutdown.closing, true)
  for (const path of ['/explicit', '/implicit']) {
    const answer = await get(path)
    t.equal(answer.connection, 'close', `${path}: Connection: close once shutdown began`)
    await answer.socketClosed
    t.pass(`${path}: and the server closed the connection`)
  }
})
