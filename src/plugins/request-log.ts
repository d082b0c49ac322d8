import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

declare module 'fastify' {
  interface FastifyRequest {
    /** What the request log line says about a token request beyond method, path and status. */
    tokenLog?: { tenant?: string; cache?: string; upstreamMs?: number }
  }
}

/**
 * One log line per request, written when the answer is sent: method, route
 * (never the query or a path parameter), status, time, and for token requests the tenant,
 * outcome, cache result and upstream latency. Probes log at debug.
 */
async function requestLog(app: FastifyInstance): Promise<void> {
  app.addHook('onResponse', async (request, reply) => {
    // The route pattern where there is one: a path parameter (an admin purge's subject) stays out of the log.
    const path = request.routeOptions.url ?? (request.url.split('?')[0] as string)
    const quiet = path === '/healthz' || path === '/readyz' || path === '/metrics'
    const line = {
      method: request.method,
      path,
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime * 10) / 10,
      ...(request.outcome !== undefined && { outcome: request.outcome }),
      ...request.tokenLog,
    }
    if (quiet) request.log.debug(line, 'request')
    else request.log.info(line, 'request')
  })
}

export default fp(requestLog, { name: 'request-log', fastify: '5.x' })
