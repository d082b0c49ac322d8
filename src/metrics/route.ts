import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/** `GET /metrics`: this replica's Prometheus text. */
async function metricsRoute(app: FastifyInstance): Promise<void> {
  app.get('/metrics', async (_request, reply) => {
    const { registry } = app.broker.metrics
    reply.header('cache-control', 'no-store')
    return reply.type(registry.contentType).send(await registry.metrics())
  })
}

export default fp(metricsRoute, { name: 'metrics-route', fastify: '5.x', dependencies: ['broker-services'] })
