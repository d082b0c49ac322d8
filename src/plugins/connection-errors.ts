import type { Socket } from 'node:net'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { ERRORS, errorBody, JSON_CONTENT_TYPE, type ErrorCode } from '../errors.js'
import { sendError } from './error-handler.js'

/** Request line and headers together, at most (contract section 2): room for an 8 KiB credential and then some. */
export const MAX_HEADER_BYTES = 32 * 1024

/**
 * Fastify's refusals before a route is found (a URL it cannot decode, an
 * over-long path parameter), in the contract's body rather than Fastify's.
 */
export function frameworkErrors(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  switch (err.code) {
    case 'FST_ERR_BAD_URL':
      sendError(request, reply, 'BAD_REQUEST', 'The URL is not valid (a broken percent-encoding).')
      return
    case 'FST_ERR_MAX_PARAM_LENGTH':
      sendError(request, reply, 'BAD_REQUEST', 'A path segment is too long.')
      return
    default:
      request.log.error({ err }, 'framework error')
      sendError(request, reply, 'INTERNAL', ERRORS.INTERNAL.message)
  }
}

/** Node's parser errors, by the code Node gives them. */
function refusalFor(code: string | undefined): { code: ErrorCode; message: string } {
  if (code === 'HPE_HEADER_OVERFLOW') return { code: 'HEADERS_TOO_LARGE', message: 'The request headers are larger than 32 KiB in all.' }
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return { code: 'REQUEST_TIMEOUT', message: 'The request was not received in time.' }
  return { code: 'BAD_REQUEST', message: 'The request is not valid HTTP.' }
}

/**
 * Node's own refusals (headers over {@link MAX_HEADER_BYTES}, a request that
 * is not HTTP, a header timeout), written straight to the socket in the
 * contract's body. Node could not read the headers, so the `Origin` is
 * unknown: `Access-Control-Allow-Origin: *` lets a browser page read this
 * static body (no credentials, nothing about the caller) and stop, where
 * it would otherwise see a network error and retry.
 */
export function clientErrorHandler(err: NodeJS.ErrnoException & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const { code, message } = refusalFor(err.code)
  const body = JSON.stringify(errorBody(code, message))
  const status = ERRORS[code].status
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${statusText(status)}\r\n` +
        `Content-Type: ${JSON_CONTENT_TYPE}\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        'Cache-Control: no-store\r\n' +
        'Access-Control-Allow-Origin: *\r\n' +
        'Connection: close\r\n\r\n' +
        body,
    )
  }
  socket.destroy()
}

function statusText(status: number): string {
  return status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request'
}
