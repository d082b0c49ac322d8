import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import type { FastifyError } from 'fastify'
import { registerControlRoutes } from './control-routes.js'
import { redactingLogger } from './logging.js'
import { attachLiveSockets } from './live-socket.js'
import { registerMintRoute } from './mint-route.js'
import { resolveOptions } from './options.js'
import type { SimulatorOptions } from './options.js'
import { MintQuota } from './quota.js'
import { SimulatorState } from './state.js'
import type { SimulatorFaults, SimulatorStats } from './state.js'

/** A running simulator. */
export interface Simulator {
  /** `http://127.0.0.1:PORT` */
  readonly url: string
  /** `ws://127.0.0.1:PORT` */
  readonly wsUrl: string
  /** The HS256 secret its tokens are signed with. */
  readonly secret: string
  /** Live counters (the same object, updated in place). */
  readonly stats: SimulatorStats
  /** Parsed JSON bodies of the last ≤100 mint requests, oldest first. */
  readonly lastBodies: unknown[]
  /** Merges faults into the current ones; throws a TypeError on an unknown mode. */
  setFaults(f: Partial<SimulatorFaults>): void
  /** Clears every apiKey's minute and day windows. */
  resetQuota(): void
  /** Zeroes the counters (not the `sockets` gauge) and forgets `lastBodies`. */
  resetStats(): void
  /** Closes the HTTP server, every live socket and every delayed or hanging request; idempotent. */
  close(): Promise<void>
}

/**
 * Starts the tik.tools stand-in: HTTP mint endpoint, WebSocket stream, control endpoints.
 *
 * @example
 * const sim = await startSimulator({ apiKeys: ['k'], perMinute: 10 })
 * const res = await fetch(`${sim.url}/authentication/jwt?apiKey=k`, { method: 'POST', body: '{}' })
 * await sim.close()
 */
export async function startSimulator(opts: SimulatorOptions = {}): Promise<Simulator> {
  const options = resolveOptions(opts)
  const state = new SimulatorState()
  const quota = new MintQuota(options.perMinute, options.perDay, options.now)
  // forceCloseConnections: keep-alive clients must not hold close() open.
  const app = Fastify({ logger: options.logger ? redactingLogger : false, forceCloseConnections: true, bodyLimit: 64 * 1024 })

  // tik.tools answers its own error shape, so the body is parsed in the route rather than by Fastify.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => done(null, body))
  app.setErrorHandler((err: FastifyError, _request, reply) => {
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500
    return reply.code(status).send({ status_code: status, message: status < 500 ? err.message : 'Internal error' })
  })
  app.setNotFoundHandler((_request, reply) => reply.code(404).send({ status_code: 404, message: 'Not found' }))

  app.get('/healthz', async () => ({ status: 'ok' }))
  registerMintRoute(app, { options, state, quota })
  if (options.control) registerControlRoutes(app, { state, quota })
  const sockets = attachLiveSockets(app.server, { options, state })

  await app.listen({ host: options.host, port: options.port })
  const authority = authorityOf(app.server.address() as AddressInfo)

  let closing: Promise<void> | undefined
  const shutdown = async (): Promise<void> => {
    state.closing.abort()
    sockets.close()
    await app.close()
  }

  return {
    url: `http://${authority}`,
    wsUrl: `ws://${authority}`,
    secret: options.secret,
    stats: state.stats,
    lastBodies: state.lastBodies,
    setFaults: (f) => state.setFaults(f),
    resetQuota: () => quota.reset(),
    resetStats: () => state.resetStats(),
    close: () => (closing ??= shutdown()),
  }
}

/** `host:port` a local client can reach: wildcard addresses become loopback. */
function authorityOf(address: AddressInfo): string {
  const host = address.address === '0.0.0.0' ? '127.0.0.1' : address.address === '::' ? '::1' : address.address
  return `${host.includes(':') ? `[${host}]` : host}:${address.port}`
}
