import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import { errorBody, ERRORS, JSON_CONTENT_TYPE } from '../errors.js'
import { atTurnEnd } from './turn-end.js'

type OnSendDone = (err: Error | null, payload?: unknown) => void

export interface TurnWritesOptions {
  /** Where an answer that could not be written is reported. */
  log: FastifyBaseLogger
}

/**
 * An `onSend` hook (callback form) that holds each answer until the end of the
 * current event-loop turn (http/turn-end.ts `answers`: after the poll phase has
 * handled every request that arrived together, before the turn's log lines are
 * written) and then lets all of them go, back to back, in the order they came.
 *
 * Why: on loopback and on a busy host, a socket write also pays for waking its
 * reader. Answers written one by one, between the handling of the next requests,
 * wake a sleeping client (or proxy) once each; written together, the reader is
 * woken once and finds them all. When the broker is quiet an answer waits only for
 * the end of its own turn (microseconds). The answer itself is unchanged (a
 * shutdown that began while it was held closes its connection: its head is written
 * now, through graceful-close's response class), except that an answer that cannot
 * be written (Fastify's send throws, say on a header Node refuses) becomes the
 * contract's 500 instead, or, if its head already left, its connection is closed:
 * the client is never left waiting.
 */
export function sendAtTurnEnd(options: TurnWritesOptions): (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: OnSendDone) => void {
  const { log } = options
  return (_request, reply, payload, done) => {
    atTurnEnd(() => {
      try {
        done(null, payload)
      } catch (err) {
        // One answer that fails to go out must not hold back the others of its turn, nor leave its client waiting.
        log.error({ err: { message: (err as Error).message } }, 'sending an answer failed; answered 500 instead')
        failed(reply.raw)
      }
    }, 'answers')
  }
}

/** The contract's 500, written straight to the socket (Fastify's own send has just failed), or a closed connection. */
function failed(raw: FastifyReply['raw']): void {
  try {
    if (raw.headersSent) {
      raw.destroy()
      return
    }
    const body = JSON.stringify(errorBody('INTERNAL', ERRORS.INTERNAL.message))
    for (const name of raw.getHeaderNames()) raw.removeHeader(name)
    raw.writeHead(ERRORS.INTERNAL.status, {
      'content-type': JSON_CONTENT_TYPE,
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
      connection: 'close',
    })
    raw.end(body)
  } catch {
    raw.destroy()
  }
}
