import type { FastifyInstance } from 'fastify'

/** Options the dev server hands the demo page. */
export interface DemoOptions {
  /** Signs a demo user JWT for a subject (dev only). */
  signUser: (sub: string) => Promise<string>
  /** The simulator's WebSocket base URL. */
  wsUrl: string
  creators: string[]
}

/** `/demo` (placeholder until the demo page lands). */
export default async function demo(app: FastifyInstance, _options: DemoOptions): Promise<void> {
  app.get('/demo', async (_request, reply) => reply.type('text/html').send('<!doctype html><title>demo</title>'))
}
