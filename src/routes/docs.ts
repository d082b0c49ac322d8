import { readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/** `GET /openapi.yaml`: the repository's spec, found beside `src/` or `dist/` and read once. */
async function docs(app: FastifyInstance): Promise<void> {
  const spec = readFileSync(new URL('../../openapi.yaml', import.meta.url), 'utf8')
  app.get('/openapi.yaml', async (_request, reply) => reply.type('application/yaml; charset=utf-8').send(spec))
}

export default fp(docs, { name: 'docs-routes', fastify: '5.x' })
