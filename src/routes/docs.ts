import { readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/** The repository's `openapi.yaml`, found beside `src/` or `dist/`. */
export const OPENAPI_FILE = new URL('../../openapi.yaml', import.meta.url)

/** `GET /openapi.yaml` (read once) and `GET /metrics` (Prometheus text). */
async function docs(app: FastifyInstance): Promise<void> {
  const spec = readFileSync(OPENAPI_FILE, 'utf8')
  app.get('/openapi.yaml', async (_request, reply) => reply.type('application/yaml; charset=utf-8').send(spec))
  app.get('/metrics', async (_request, reply) => {
    const { registry } = app.broker.metrics
    reply.header('cache-control', 'no-store')
    return reply.type(registry.contentType).send(await registry.metrics())
  })
}

export default fp(docs, { name: 'docs-routes', fastify: '5.x', dependencies: ['broker-services'] })
