import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { BrokerError, ERRORS, errorBody, JSON_CONTENT_TYPE, type ErrorCode } from '../errors.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The contract code this request ended with, for the request log and metrics. */
    outcome?: string
  }
}

/** Fastify's own client errors, by status, in the contract's words. */
function fromStatus(err: FastifyError): { code: ErrorCode; message: string } {
  switch (err.statusCode) {
    case 404:
      return { code: 'NOT_FOUND', message: ERRORS.NOT_FOUND.message }
    case 413:
      return { code: 'PAYLOAD_TOO_LARGE', message: ERRORS.PAYLOAD_TOO_LARGE.message }
    case 415:
      return { code: 'UNSUPPORTED_MEDIA_TYPE', message: ERRORS.UNSUPPORTED_MEDIA_TYPE.message }
    case 429:
      return { code: 'RATE_LIMITED', message: ERRORS.RATE_LIMITED.message }
    default:
      if (err instanceof SyntaxError || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
        return { code: 'BAD_REQUEST', message: 'The body is not valid JSON.' }
      }
      return { code: 'BAD_REQUEST', message: ERRORS.BAD_REQUEST.message }
  }
}

/** Renders a contract error; a 5xx never shows internals, the log has them. */
export function sendError(request: FastifyRequest, reply: FastifyReply, code: ErrorCode, message: string): FastifyReply {
  request.outcome = code
  return reply.code(ERRORS[code].status).type(JSON_CONTENT_TYPE).send(errorBody(code, message))
}

async function errorHandler(app: FastifyInstance): Promise<void> {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err instanceof BrokerError) {
      reply.headers(err.headers)
      if (err.statusCode >= 500) request.log.warn({ code: err.code }, err.message)
      return sendError(request, reply, err.code, err.message)
    }
    const status = err.statusCode ?? 500
    if (status >= 400 && status < 500) {
      const { code, message } = fromStatus(err)
      return sendError(request, reply, code, message)
    }
    request.log.error({ err }, 'unhandled error')
    return sendError(request, reply, 'INTERNAL', ERRORS.INTERNAL.message)
  })
  app.setNotFoundHandler((request, reply) => sendError(request, reply, 'NOT_FOUND', `No route ${request.method} ${request.url.split('?')[0]}.`))
}

export default fp(errorHandler, { name: 'error-handler', fastify: '5.x' })
