import type { FastifyInstance, FastifyReply } from 'fastify'
import { BrokerError } from '../errors.js'
import { contentSecurityPolicy, demoPage } from './page.js'
import { DEMO_SCRIPT } from './script.js'
import { DEMO_STYLE } from './style.js'

/** Options the dev server hands the demo page. */
export interface DemoOptions {
  /** Signs a demo user JWT for a subject (dev only). */
  signUser: (sub: string) => Promise<string>
  /** The simulator's WebSocket base URL. */
  wsUrl: string
  creators: string[]
}

/** A demo user name: what a person would type, short enough for a `sub` claim and a log line. */
const NAME = /^[\p{L}\p{N}][\p{L}\p{N} ._@-]{0,47}$/u

/** Reads `{"name": "..."}` from the sign-in form, or refuses with BAD_REQUEST. */
function nameFrom(body: unknown): string {
  const name = typeof body === 'object' && body !== null ? (body as { name?: unknown }).name : undefined
  const trimmed = typeof name === 'string' ? name.trim() : ''
  if (!NAME.test(trimmed)) {
    throw new BrokerError('BAD_REQUEST', 'name must be 1–48 letters, digits, spaces or . _ @ -, starting with a letter or digit.')
  }
  return trimmed
}

function asset(reply: FastifyReply, type: string, body: string): FastifyReply {
  return reply.type(type).header('cache-control', 'no-cache').header('x-content-type-options', 'nosniff').send(body)
}

/**
 * The `/demo` page (dev only; `src/main.ts` never registers it): sign in as
 * a made-up user, pick a creator, and watch the browser client at work:
 * the live feed, the token's countdown and renewal, both rate-limit header
 * sets and the contract's error codes.
 *
 * - `GET /demo`: the page; `GET /demo/app.js` and `GET /demo/style.css`: its module and style.
 * - `POST /demo/session` `{"name": "ada"}` → `{"subject": "ada", "token": "<user JWT>"}`.
 */
export default async function demo(app: FastifyInstance, options: DemoOptions): Promise<void> {
  const page = demoPage({ creators: options.creators, wsUrl: options.wsUrl })
  const csp = contentSecurityPolicy(options.wsUrl)

  app.get('/demo', async (_request, reply) =>
    asset(reply.header('content-security-policy', csp).header('referrer-policy', 'no-referrer'), 'text/html; charset=utf-8', page))
  app.get('/demo/app.js', async (_request, reply) => asset(reply, 'text/javascript; charset=utf-8', DEMO_SCRIPT))
  app.get('/demo/style.css', async (_request, reply) => asset(reply, 'text/css; charset=utf-8', DEMO_STYLE))

  app.post('/demo/session', async (request, reply) => {
    const subject = nameFrom(request.body)
    reply.header('cache-control', 'no-store')
    return { subject, token: await options.signUser(subject) }
  })
}
