import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
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
  writeRefusal(socket, code, message)
}

/** `code`'s contract answer: its status, body and headers (readable from any origin, closing the connection). */
function refusal(code: ErrorCode, message: string): { status: number; body: string; headers: Record<string, string | number> } {
  const body = JSON.stringify(errorBody(code, message))
  return {
    status: ERRORS[code].status,
    body,
    headers: {
      'Content-Type': JSON_CONTENT_TYPE,
      'Content-Length': Buffer.byteLength(body),
      'Cache-Control': 'no-store',
      'Access-Control-Allow-Origin': '*',
      Connection: 'close',
    },
  }
}

/** {@link refusal} written straight to `socket` (there is no response object), then the socket closed. */
function writeRefusal(socket: Socket, code: ErrorCode, message: string): void {
  const { status, body, headers } = refusal(code, message)
  if (socket.writable) {
    const head = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('')
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n${head}\r\n${body}`)
  }
  socket.destroy()
}

/** {@link refusal} as the whole answer of `res` (the request was not one to serve). */
function refuse(res: ServerResponse, code: ErrorCode, message: string): void {
  const { status, body, headers } = refusal(code, message)
  res.writeHead(status, headers)
  res.end(body)
}

/**
 * `listener` behind the check Node would make itself (`requireHostHeader`, switched off where
 * the server is made): an HTTP/1.1 request without `Host` is answered 400 (RFC 9112 §3.2: a
 * server MUST), in the contract's body and closing its connection, where Node would answer
 * with an empty body. One check per request, no Fastify hook.
 */
export function requireHost(listener: (req: IncomingMessage, res: ServerResponse) => void): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    if (req.headers.host === undefined && req.httpVersionMajor === 1 && req.httpVersionMinor === 1) return refuse(res, 'BAD_REQUEST', 'An HTTP/1.1 request must carry a Host header.')
    listener(req, res)
  }
}

/**
 * Node's other refusals that bypass `clientError`, in the contract's body, readable from
 * any origin as Node's other refusals are ({@link clientErrorHandler}), closing their
 * connection: an `Expect` other than `100-continue` (RFC 9110 §10.1.1: 417), through Node's
 * `checkExpectation` event, which replaces Node's own empty answer; and `CONNECT`, which
 * Node would drop unanswered.
 */
export function refuseInContract(server: Server): void {
  server.on('checkExpectation', (_req: IncomingMessage, res: ServerResponse) => refuse(res, 'EXPECTATION_FAILED', ERRORS.EXPECTATION_FAILED.message))
  // CONNECT (a proxy's tunnel) is no route here; without a listener Node would drop the connection unanswered.
  server.on('connect', (_req: IncomingMessage, socket: Socket) => writeRefusal(socket, 'NOT_FOUND', 'No route CONNECT: this is not a proxy.'))
}
