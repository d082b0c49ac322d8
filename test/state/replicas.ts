import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { buildApp } from '../../src/app.js'
import type { Config } from '../../src/config/index.js'
import { createLogger } from '../../src/logger.js'
import { createState, type StateOptions } from '../../src/state/index.js'
import { userJwt } from '../helpers/broker.js'

/** A broker built the way main.ts builds it (createState, then buildApp), with its log lines kept. */
export interface Replica {
  app: FastifyInstance
  logs: string[]
  /** POST /v1/token for `subject`, bounded: a request that hangs fails the test instead of the run. */
  token(subject: string, body?: object): Promise<{ status: number; ms: number; headers: Record<string, unknown>; body: any }>
  ready(): Promise<number>
}

export async function startReplica(t: Test, config: Config, options: StateOptions & { now?: () => number } = {}): Promise<Replica> {
  const logs: string[] = []
  const sink = new Writable({ write: (chunk, _enc, cb) => (logs.push(String(chunk)), cb()) })
  const logger = createLogger('info', sink)
  const state = await createState(config, logger, options)
  const { store, counters, ledger, rateLimitStore, overrides, readiness } = state
  const now = options.now !== undefined ? { now: options.now } : {}
  const app = await buildApp(config, { logger, store, counters, ledger, rateLimitStore, overrides, readiness, ...now })
  app.addHook('onClose', async () => state.close())
  await app.ready()
  t.teardown(() => app.close())
  const jwts = new Map<string, string>()
  return {
    app,
    logs,
    async token(subject, body = { allowed_creators: ['a1'] }) {
      let jwt = jwts.get(subject)
      if (jwt === undefined) jwts.set(subject, (jwt = await userJwt(subject)))
      const started = performance.now()
      const res = await app.inject({
        method: 'POST',
        url: '/v1/token',
        headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' },
        payload: JSON.stringify(body),
        signal: AbortSignal.timeout(5000),
      })
      return { status: res.statusCode, ms: performance.now() - started, headers: res.headers, body: res.json() }
    },
    async ready() {
      return (await app.inject({ method: 'GET', url: '/readyz', signal: AbortSignal.timeout(3000) })).statusCode
    },
  }
}
