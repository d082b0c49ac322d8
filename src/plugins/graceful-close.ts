import { ServerResponse, type IncomingMessage, type OutgoingHttpHeader, type OutgoingHttpHeaders } from 'node:http'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

declare module 'fastify' {
  interface FastifyInstance {
    /** True once shutdown has begun (`preClose`): an answer written from then on says `Connection: close`. */
    readonly closing: boolean
  }
}

/**
 * A server's shutdown, shared by its responses and the plugin that begins it. Made
 * before the app: Node takes the response class when the server is created
 * (`http.createServer({ ServerResponse })`, in app.ts's server factory).
 */
export interface Shutdown {
  /**
   * Node's `ServerResponse`, except that an answer whose head is written once shutdown
   * began goes with `Connection: close`, and its connection closes after it
   * (`shouldKeepAlive = false`: RFC 9112 §9.6). Every answer's head is written through
   * `writeHead` (Node's implicit head as well), so none is missed, and nothing runs per
   * request beyond one check: no `onSend` hook that every route would pay for.
   */
  readonly ServerResponse: typeof ServerResponse
  readonly closing: boolean
  /** Marks shutdown as begun; from now on every answer closes its connection. */
  begin(): void
}

type WriteHeadArgs = [statusCode: number, statusMessage?: string | OutgoingHttpHeaders | OutgoingHttpHeader[], headers?: OutgoingHttpHeaders | OutgoingHttpHeader[]]

/** A {@link Shutdown} not yet begun. */
export function shutdownSignal(): Shutdown {
  let closing = false
  class ShutdownAwareResponse<Request extends IncomingMessage = IncomingMessage> extends ServerResponse<Request> {
    override writeHead(...args: WriteHeadArgs): this {
      if (closing) this.shouldKeepAlive = false
      return (super.writeHead as (...a: WriteHeadArgs) => this)(...args)
    }
  }
  return {
    ServerResponse: ShutdownAwareResponse,
    get closing() {
      return closing
    },
    begin() {
      closing = true
    },
  }
}

/**
 * Lets in-flight requests finish on shutdown without keep-alive connections
 * holding the process open: once closing starts, idle connections are closed
 * and every answer still being sent says `Connection: close` (the server's
 * responses are `shutdown.ServerResponse`).
 */
async function gracefulClose(app: FastifyInstance, options: { shutdown: Shutdown }): Promise<void> {
  const { shutdown } = options
  app.decorate('closing', {
    getter: () => shutdown.closing,
  })
  app.addHook('preClose', async () => {
    shutdown.begin()
    app.server.closeIdleConnections()
  })
}

export default fp(gracefulClose, { name: 'graceful-close', fastify: '5.x' })
