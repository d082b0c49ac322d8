import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { errorBody } from '../errors.js'

/** A readiness check: resolves to a reason when not ready, undefined when ready. */
export type ReadinessCheck = () => Promise<string | undefined>

/**
 * `GET /healthz` (the process lives) and `GET /readyz` (config loaded, shared state reachable).
 * Not ready is a 503 in the contract's error body, code `NOT_READY`, its message naming every
 * reason, plus `status: "unavailable"` and `reasons` (one string per failed check).
 */
async function health(app: FastifyInstance, opts: { checks: ReadinessCheck[] }): Promise<void> {
  app.get('/healthz', async (_request, reply) => {
    reply.header('cache-control', 'no-store')
    return { status: 'ok' }
  })
  app.get('/readyz', async (_request, reply) => {
    reply.header('cache-control', 'no-store')
    const reasons = (await Promise.all(opts.checks.map((check) => check().catch((e: Error) => e.message)))).filter(
      (r): r is string => r !== undefined,
    )
    // The contract's error body (every answer uses it), with the reasons as a list beside it for probes and people.
    if (reasons.length > 0) return reply.code(503).send({ ...errorBody('NOT_READY', `Not ready: ${reasons.join('; ')}`), status: 'unavailable', reasons })
    return { status: 'ready', tenants: app.broker.tenants.all().length }
  })
}

export default fp(health, { name: 'health-routes', fastify: '5.x', dependencies: ['broker-services'] })
