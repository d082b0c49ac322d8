import { stat } from 'node:fs/promises'
import { createServer, request, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { buildApp, EXPOSED_HEADERS, type AppDeps } from '../../src/app.js'
import type { Tenant } from '../../src/config/tenant-schema.js'
import { createLogger } from '../../src/logger.js'
import { startSimulator, type Simulator, type SimulatorOptions } from '../../src/simulator/index.js'
import { clientDir, loadClient, repoRoot } from '../client/build.js'
import { API_KEY, configFor } from '../helpers/broker.js'

/** One request as the broker received it. */
export interface SeenRequest {
  method: string
  url: string
  origin: string | undefined
}

/** A broker listening on 127.0.0.1:0 in front of a real simulator. */
export interface ListeningBroker {
  /** `http://127.0.0.1:PORT` */
  url: string
  app: FastifyInstance
  sim: Simulator
  /** Every request the broker received, preflights included, in order. */
  seen: SeenRequest[]
  /** How many `POST /v1/token` reached the broker. */
  tokenPosts(): number
}

async function mtime(file: string): Promise<number> {
  return stat(file).then((s) => s.mtimeMs, () => 0)
}

/**
 * Makes sure dist/client holds the current browser client, which the
 * `/client.js` route reads at registration: `npm run build` has usually made
 * it; when it is missing or older than src/client, it is built now.
 */
export async function ensureClientBuilt(): Promise<void> {
  const built = await mtime(join(clientDir, 'index.js'))
  if (built === 0 || built < (await mtime(join(repoRoot, 'src', 'client', 'index.ts')))) await loadClient()
}

export interface BrokerOptions {
  tenants: Tenant[]
  sim?: SimulatorOptions
  deps?: AppDeps
}

/**
 * Starts a simulator and a broker on 127.0.0.1:0, the way `buildBroker`
 * does but listening, so a browser can reach it; both closed at teardown.
 * `/client.js` is served from dist/client (see {@link ensureClientBuilt}).
 */
export async function startBroker(t: Test, options: BrokerOptions): Promise<ListeningBroker> {
  const sim = await startSimulator({ apiKeys: [API_KEY], ...options.sim })
  t.teardown(() => sim.close())
  const app = await buildApp(configFor(sim.url, options.tenants, { logLevel: 'silent' }), {
    logger: createLogger('silent'),
    ...options.deps,
  })
  t.teardown(() => app.close())
  const seen: SeenRequest[] = []
  app.addHook('onRequest', async (req) => {
    seen.push({ method: req.method, url: req.url, origin: req.headers.origin })
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return {
    url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
    app,
    sim,
    seen,
    tokenPosts: () => seen.filter((r) => r.method === 'POST' && r.url === '/v1/token').length,
  }
}

async function listen(t: Test, server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** The app page: another origin than the broker's, importing the broker's `/client.js`. */
function appHtml(brokerUrl: string): string {
  // JSON in a script: `<` escaped so that no value can close the element.
  const clientUrl = JSON.stringify(`${brokerUrl}/client.js`).replace(/</g, '\\u003c')
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>app</title><link rel="icon" href="data:,"></head>
<body><p>An app on its own origin.</p>
<script type="module">
import(${clientUrl}).then(
  (mod) => { globalThis.tiktools = mod; globalThis.clientLoaded = 'ok' },
  (err) => { globalThis.clientLoaded = 'import failed: ' + err },
)
</script></body></html>
`
}

/**
 * A static "app page" server on its own 127.0.0.1 port (so its own origin):
 * `GET /?broker=<broker base URL>` answers a page that imports that broker's
 * `/client.js` and puts the module at `globalThis.tiktools`.
 */
export async function startAppPage(t: Test): Promise<{ url: string; origin: string }> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://app')
    const broker = url.searchParams.get('broker')
    if (url.pathname !== '/' || broker === null) {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(appHtml(broker))
  })
  const base = await listen(t, server)
  return { url: base, origin: base }
}

/**
 * A stand-in for a broker over its limit: the first `refusals` token requests
 * get the contract's 429 `RATE_LIMITED` with `Retry-After: retryAfter` (and the
 * CORS headers the broker would send); every other request, preflights
 * included, is passed through to the real broker at `target`.
 */
export async function startRefusingProxy(
  t: Test,
  target: string,
  opts: { retryAfter: number; refusals?: number },
): Promise<{ url: string; tokenPosts: () => number; refused: () => number }> {
  let posts = 0
  let refused = 0
  const server = createServer((req, res) => {
    const isTokenPost = req.method === 'POST' && req.url === '/v1/token'
    if (isTokenPost) posts++
    if (isTokenPost && refused < (opts.refusals ?? 1)) {
      refused++
      req.resume()
      const origin = req.headers.origin
      res.writeHead(429, {
        'content-type': 'application/json; charset=utf-8',
        'retry-after': String(opts.retryAfter),
        'ratelimit-limit': '1',
        'ratelimit-remaining': '0',
        'ratelimit-reset': String(opts.retryAfter),
        ...(origin !== undefined && {
          'access-control-allow-origin': origin,
          'access-control-expose-headers': EXPOSED_HEADERS.join(', '),
          vary: 'Origin',
        }),
      })
      res.end(JSON.stringify({ status_code: 429, code: 'RATE_LIMITED', message: `Too many token requests; retry in ${opts.retryAfter} s.` }))
      return
    }
    const forward = request(`${target}${req.url ?? '/'}`, { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(res)
    })
    forward.on('error', () => res.destroy())
    req.pipe(forward)
  })
  return { url: await listen(t, server), tokenPosts: () => posts, refused: () => refused }
}
