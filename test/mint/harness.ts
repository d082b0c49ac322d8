import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { buildApp } from '../../src/app.js'
import type { Tenant } from '../../src/config/tenant-schema.js'
import { createLogger } from '../../src/logger.js'
import { createState } from '../../src/state/index.js'
import { acme, configFor, rememberSecret, userJwt } from '../helpers/broker.js'

/** A clock the test moves; starts at the real time so that user JWTs stay valid. */
export interface Clock {
  now: number
  advance(ms: number): void
}

export function fakeClock(): Clock {
  const clock = {
    now: Date.now(),
    advance(ms: number) {
      clock.now += ms
    },
  }
  return clock
}

export const ADMIN = 'admin-token-for-mint-tests-0123456789'

export interface MintBroker {
  app: FastifyInstance
  logs: string[]
  /** POST /v1/token for `subject` with `body` (default: creator a1). */
  token(subject: string, body?: object): Promise<{ status: number; headers: Record<string, any>; body: any }>
  purge(subject: string): Promise<number>
}

/**
 * A broker in front of `upstreamUrl`, on memory or, with `redis`, on the
 * shared state exactly as main.ts builds it; time from `clock` where given.
 */
export async function mintBroker(
  t: Test,
  upstreamUrl: string,
  options: { tenants?: Tenant[]; clock?: Clock; redis?: { url: string; prefix: string }; timeoutMs?: number } = {},
): Promise<MintBroker> {
  const logs: string[] = []
  const sink = new Writable({ write: (chunk, _enc, cb) => (logs.push(String(chunk)), cb()) })
  const logger = createLogger('info', sink)
  const config = configFor(upstreamUrl, options.tenants ?? [acme()], {
    adminToken: ADMIN,
    ...(options.redis !== undefined && { redisUrl: options.redis.url }),
  })
  config.upstream.timeoutMs = options.timeoutMs ?? 3000
  const state = await createState(config, logger, options.redis !== undefined ? { keyPrefix: options.redis.prefix } : {})
  const { store, counters, ledger, rateLimitStore, overrides, readiness } = state
  const clock = options.clock
  const app = await buildApp(config, {
    logger,
    store,
    counters,
    ledger,
    rateLimitStore,
    overrides,
    readiness,
    ...(clock !== undefined && { now: () => clock.now }),
  })
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
      const res = await app.inject({
        method: 'POST',
        url: '/v1/token',
        headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' },
        payload: JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      })
      const parsed = res.json()
      if (typeof parsed?.data?.token === 'string') rememberSecret(parsed.data.token)
      return { status: res.statusCode, headers: res.headers, body: parsed }
    },
    async purge(subject) {
      const res = await app.inject({
        method: 'DELETE',
        url: `/admin/tenants/acme/subjects/${subject}/tokens`,
        headers: { authorization: `Bearer ${ADMIN}` },
      })
      return res.statusCode
    },
  }
}

/** Resolves once `predicate` holds, checking every few ms; fails after `ms`. */
export async function until(predicate: () => boolean | Promise<boolean>, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}
