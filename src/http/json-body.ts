import type { FastifyRequest } from 'fastify'
import secureJson from 'secure-json-parse'
import { BrokerError } from '../errors.js'

/** secure-json-parse: a key `__proto__`, or `constructor` holding `prototype`, is an error, not a property. */
const REFUSE_POISONING = { protoAction: 'error', constructorAction: 'error' } as const

/** A JSON body's refusal (400 `BAD_REQUEST`): prototype poisoning by name, anything else as not JSON. */
function jsonRefusal(err: Error): BrokerError {
  return /forbidden prototype property/.test(err.message)
    ? new BrokerError('BAD_REQUEST', 'The body has a key no JSON body may have (__proto__, or constructor.prototype).')
    : new BrokerError('BAD_REQUEST', 'The body is not valid JSON.')
}

/**
 * The broker's JSON body parser (a Fastify content-type parser taking the body as a string), for
 * `application/json`, the `+json` types (RFC 6839) and an admin merge patch (RFC 7396): no body at
 * all, or only whitespace, is `{}` (the contract: "no body at all means `{}`"); anything else is
 * parsed by secure-json-parse, as Fastify's own parser does, with prototype poisoning refused.
 * Fastify's parser answers every failure "not valid JSON"; this one names the poisoning key.
 */
export function parseJson(_request: FastifyRequest, body: string | Buffer, done: (err: Error | null, body?: unknown) => void): void {
  if (body === '' || (typeof body === 'string' && body.trim() === '')) return done(null, {})
  let value: unknown
  try {
    value = secureJson.parse(body, null, REFUSE_POISONING)
  } catch (err) {
    return done(jsonRefusal(err as Error))
  }
  done(null, value)
}

/**
 * The catch-all content-type parser, for every type that is not JSON: a request with no body at all
 * (`Content-Length: 0`, or neither it nor `Transfer-Encoding`) is `{}` whatever its `Content-Type`
 * says (the contract: "no body at all means `{}`"); one with a body is a 415 `UNSUPPORTED_MEDIA_TYPE`,
 * and its body is not read.
 */
export function emptyOrUnsupported(request: FastifyRequest, _payload: unknown, done: (err: Error | null, body?: unknown) => void): void {
  const { headers } = request
  if (headers['transfer-encoding'] === undefined && (headers['content-length'] === undefined || headers['content-length'] === '0')) return done(null, {})
  done(new BrokerError('UNSUPPORTED_MEDIA_TYPE'))
}
