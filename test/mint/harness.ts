import type { Test } from 'tap'
import type { Tenant } from '../../src/config/tenant-schema.js'
import { acme, configFor, rememberSecret } from '../helpers/broker.js'
import { startReplica, type Replica } from '../state/replicas.js'

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

export interface MintBroker extends Replica {
  /** DELETE /admin/tenants/acme/subjects/{subject}/tokens; answers the status. */
  purge(subject: string): Promise<number>
}

/**
 * A broker in front of `upstreamUrl`, on memory or, with `redis`, on the
 * shared state exactly as main.ts builds it; time from `clock` where given.
 */
export async function mintBroker(
  t: Test,
  upstreamUrl: string,
  options: { tenants?: Tenant[]; clock?: Clock; redis?: { url: string; prefix: string } } = {},
): Promise<MintBroker> {
  const config = configFor(upstreamUrl, options.tenants ?? [acme()], {
    adminToken: ADMIN,
    ...(options.redis !== undefined && { redisUrl: options.redis.url }),
  })
  config.upstream.timeoutMs = 3000
  const { clock, redis } = options
  const replica = await startReplica(t, config, {
    ...(redis !== undefined && { keyPrefix: redis.prefix }),
    ...(clock !== undefined && { now: () => clock.now }),
  })
  return {
    ...replica,
    async token(subject, body) {
      const answer = await replica.token(subject, body)
      if (typeof answer.body?.data?.token === 'string') rememberSecret(answer.body.data.token)
      return answer
    },
    async purge(subject) {
      const res = await replica.app.inject({
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
