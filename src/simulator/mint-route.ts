import type { FastifyInstance, FastifyReply } from 'fastify'
import { delay, faultAnswer, untilClosed } from './faults.js'
import type { MintAnswer } from './faults.js'
import { parseMintBody, readJsonBody } from './mint-body.js'
import { acceptsApiKey } from './options.js'
import type { ResolvedOptions } from './options.js'
import { quotaHeaders } from './quota.js'
import type { MintQuota } from './quota.js'
import type { SimulatorState } from './state.js'
import { mintSimulatorToken } from './token.js'

/** What the mint route needs from the simulator. */
export interface MintRouteDeps {
  options: ResolvedOptions
  state: SimulatorState
  quota: MintQuota
}

/**
 * `POST /authentication/jwt?apiKey=KEY`, as tik.tools answers it.
 * Order: latency, hang, apiKey (401), injected faults, quota (429), body (400), mint.
 */
export function registerMintRoute(app: FastifyInstance, deps: MintRouteDeps): void {
  const { options, state, quota } = deps
  app.post('/authentication/jwt', async (request, reply) => {
    state.stats.requests++
    const body = readJsonBody(request.body)
    if (body.ok) state.recordBody(body.value)
    // Faults are read once on arrival, so a test changing them mid-flight sees a predictable answer.
    const { mode, latencyMs } = state.faults
    const signal = state.closing.signal

    if (latencyMs > 0 && !(await delay(latencyMs, signal))) return drop(reply)
    if (mode === 'hang') {
      state.stats.failures++
      await untilClosed(signal)
      return drop(reply)
    }

    const apiKey = (request.query as Record<string, unknown>).apiKey
    if (!acceptsApiKey(options, apiKey)) {
      state.stats.failures++
      // Every answer carries X-RateLimit-* (tik.tools docs, CONTRACT section 1): an unknown key's are a window of its own,
      // never counted (its status is read, not taken, so no key a caller makes up is remembered).
      const window = quotaHeaders(quota.status(typeof apiKey === 'string' ? apiKey : ''))
      return send(reply, { status: 401, headers: window, body: { status_code: 401, message: 'Invalid API key' } })
    }

    const status = quota.status(apiKey)
    if (mode !== 'ok') {
      state.stats[mode === 'rate-limited' ? 'rateLimited' : 'failures']++
      return send(reply, faultAnswer(mode, quotaHeaders(status), options.now(), options.perMinute))
    }
    if (status.exhausted) {
      state.stats.rateLimited++
      const headers = { ...quotaHeaders(status), 'retry-after': String(status.retryAfter) }
      return send(reply, { status: 429, headers, body: { status_code: 429, message: 'Rate limit exceeded' } })
    }

    const parsed = body.ok ? parseMintBody(body.value) : body
    if (!parsed.ok) {
      state.stats.failures++
      return send(reply, { status: 400, headers: quotaHeaders(status), body: { status_code: 400, message: parsed.message } })
    }

    const token = await mintSimulatorToken(parsed.grant, options.secret, options.now())
    state.stats.mints++
    return send(reply, { status: 200, headers: quotaHeaders(quota.consume(apiKey)), body: { status_code: 0, data: { token } } })
  })
}

function send(reply: FastifyReply, answer: MintAnswer): FastifyReply {
  return reply.code(answer.status).headers(answer.headers).send(answer.body)
}

/** Ends a request without an answer, as a dead upstream would. */
function drop(reply: FastifyReply): FastifyReply {
  reply.hijack()
  reply.raw.destroy()
  return reply
}
