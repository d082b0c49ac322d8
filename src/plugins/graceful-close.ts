import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

declare module 'fastify' {
  interface FastifyInstance {
    /** True once shutdown has begun (`preClose`): an answer written from then on says `Connection: close`. */
    readonly closing: boolean
  }
}

/**
 * Lets in-flight requests finish on shutdown without keep-alive connections
 * holding the process open: once closing starts, idle connections are closed
 * and every answer still being sent says `Connection: close`.
 */
async function gracefulClose(app: FastifyInstance): Promise<void> {
  let closing = false
  app.decorate('closing', {
    getter: () => closing,
  })
  app.addHook('preClose', async () => {
    closing = true
    app.server.closeIdleConnections()
  })
  // A callback hook: every answer passes here, and a promise each would cost more than the check.
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close')
    done(null, payload)
  })
}

export default fp(gracefulClose, { name: 'graceful-close', fastify: '5.x' })
