import http from 'node:http'
import { Writable } from 'node:stream'
import t from 'tap'
import { buildApp } from '../../src/app.js'
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
  t.same(
    [...statuses.keys()].filter((s) => s !== 200 && s !== 503),
    [],
    'only answers and the closing 503',
  )
})
