import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { jsonNumber, jsonString } from '../http/json-text.js'
import { lineWriter } from '../logger.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** What the request log line says about a token request beyond method, path and status. */
    tokenLog?: { tenant?: string; cache?: string; upstreamMs?: number }
  }
}

const PROBES = new Set(['/healthz', '/readyz', '/metrics'])

/** The request line's `path` for a request no route matched (a 404, a refusal before routing). */
const UNMATCHED = '(no route)'

/**
 * The request line's fields, as JSON members (`"reqId":"req-1","method":"POST",…`), in
 * this order: reqId, method, path, status, ms, then outcome, tenant, cache and
 * upstreamMs where known. Only these fields, each a request id, a method, a route
 * pattern, a number, a tenant id or an outcome name — never a secret. Written as
 * text (`JSON.stringify` of the same object, a test holds it to that) because this
 * runs for every request (the pieces: http/json-text.ts).
 */
export function requestLineFields(request: FastifyRequest, reply: FastifyReply, path: string): string {
  let text = `"reqId":${jsonString(request.id)},"method":${jsonString(request.method)},"path":${jsonString(path)},"status":${reply.statusCode},"ms":${jsonNumber(Math.round(reply.elapsedTime * 10) / 10)}`
  if (request.outcome !== undefined) text += `,"outcome":${jsonString(request.outcome)}`
  const t = request.tokenLog
  if (t !== undefined) {
    if (t.tenant !== undefined) text += `,"tenant":${jsonString(t.tenant)}`
    if (t.cache !== undefined) text += `,"cache":${jsonString(t.cache)}`
    if (t.upstreamMs !== undefined) text += `,"upstreamMs":${jsonNumber(t.upstreamMs)}`
  }
  return text
}

/**
 * One log line per request, written when the answer is sent: request id, method, route
 * (never the query or a path parameter; `(no route)` where none matched), status, time, and for token requests the tenant,
 * outcome, cache result and upstream latency. Probes log at debug.
 *
 * The line is built field by field, as JSON text, from values that are never secret, so it
 * is written without pino's `redact` pass and generic per-key formatting (together they cost
 * more than the rest of a cache hit): `plainLineWriter` frames it as pino would. Every other log
 * call of the broker keeps pino's full pass. No per-request child logger is needed either:
 * the request id is a field of the line.
 */
async function requestLog(app: FastifyInstance): Promise<void> {
  const write = lineWriter(app.log)
  app.addHook('onResponse', (request, reply, done) => {
    // The route pattern where there is one: a path parameter (an admin purge's subject) stays out of the log. A
    // path no route matched is not logged at all: it is whatever a client sent, a credential pasted into it included.
    const path = request.routeOptions.url ?? UNMATCHED
    write(PROBES.has(path) ? 'debug' : 'info', requestLineFields(request, reply, path), 'request')
    done()
  })
}

export default fp(requestLog, { name: 'request-log', fastify: '5.x' })
