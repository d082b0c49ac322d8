import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'

type OnSendDone = (err: Error | null, payload?: unknown) => void

/**
 * An `onSend` hook (callback form) that holds each answer until the end of the
 * current event-loop turn (`setImmediate`, after the poll phase has handled every
 * request that arrived together) and then lets all of them go, back to back.
 *
 * Why: on loopback and on a busy host, a socket write also pays for waking its
 * reader. Answers written one by one, between the handling of the next requests,
 * wake a sleeping client (or proxy) once each; written together, the reader is
 * woken once and finds them all. When the broker is quiet an answer waits only for
 * the end of its own turn (microseconds). The answer itself is unchanged.
 */
export function sendAtTurnEnd(log: FastifyBaseLogger): (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: OnSendDone) => void {
  let dones: OnSendDone[] = []
  let payloads: unknown[] = []
  const flush = (): void => {
    const held = dones
    const bodies = payloads
    dones = []
    payloads = []
    for (let i = 0; i < held.length; i++) {
      try {
        ;(held[i] as OnSendDone)(null, bodies[i])
      } catch (err) {
        // One answer that fails to go out must not hold back the others of its turn.
        log.error({ err: { message: (err as Error).message } }, 'sending an answer failed')
      }
    }
  }
  return (_request, _reply, payload, done) => {
    if (dones.length === 0) setImmediate(flush)
    dones.push(done)
    payloads.push(payload)
  }
}
