import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Test } from 'tap'
import { until } from '../helpers/redis-topologies.js'
import { admin, coldBurst } from '../state/redis-suites.js'
import type { Replica } from '../state/replicas.js'

/** One answer during a failover, with when it came. */
export interface Answer {
  status: number
  code: string | undefined
  at: number
  ms: number
  /** Which request, for the failure report. */
  subject: string
  replica: number
}

/**
 * Requests from `workers` loops over both replicas until `stop` aborts:
 * mostly the same 10 subjects (hits once warm), every 5th a cold key (a miss).
 */
export async function traffic(replicas: Replica[], stop: AbortSignal, workers = 4): Promise<Answer[]> {
  const results: Answer[] = []
  const run = randomBytes(3).toString('hex')
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      for (let i = 0; !stop.aborted; i++) {
        const index = (w + i) % replicas.length
        const subject = i % 5 === 4 ? `cold-${run}-${w}-${i}` : `warm-${(w * 3 + i) % 10}`
        const r = await (replicas[index] as Replica).token(subject).catch(() => ({ status: 0, body: {}, ms: Infinity }))
        results.push({ status: r.status, code: (r.body as { code?: string }).code, at: Date.now(), ms: r.ms, subject, replica: index })
        // Paced, so that a loaded CI machine still has time for the failover itself.
        await sleep(5)
      }
    }),
  )
  return results
}

/** Fails `t` for any answer that is neither a 200 nor the contract's 503 (and says how many of each). */
export function noServerErrors(t: Test, answers: Answer[], what: string): void {
  const byStatus = new Map<string, number>()
  for (const a of answers) byStatus.set(`${a.status}${a.code !== undefined ? ` ${a.code}` : ''}`, (byStatus.get(`${a.status}${a.code !== undefined ? ` ${a.code}` : ''}`) ?? 0) + 1)
  const bad = answers.filter((a) => a.status !== 200 && !(a.status === 503 && a.code === 'UPSTREAM_UNAVAILABLE'))
  t.equal(bad.length, 0, `${what}: ${answers.length} answers, ${JSON.stringify(Object.fromEntries(byStatus))}; no 5xx but the contract's 503`)
  const slowest = answers.reduce<Answer | undefined>((max, a) => (max === undefined || a.ms > max.ms ? a : max), undefined)
  const which = slowest === undefined ? '' : ` (${slowest.subject} on replica ${slowest.replica}, answered at ${new Date(slowest.at).toISOString()})`
  t.ok((slowest?.ms ?? 0) < 3000, `${what}: slowest answer ${Math.round(slowest?.ms ?? 0)} ms${which}`)
}

/** Waits until `/readyz` of the replica answers `status`; answers the time it took. */
export function readyzBecomes(replica: Replica, status: number, ms: number): Promise<number> {
  return until(`/readyz ${status}`, async () => (await replica.ready()) === status, ms)
}

/** Waits until a token minted through `a` is served from the cache by `b`: state is shared again. */
export async function sharedAgain(a: Replica, b: Replica, ms: number): Promise<number> {
  let n = 0
  return until(
    'a token minted through one replica is a cache hit on the other',
    async () => {
      const subject = `shared-probe-${n++}`
      const minted = await a.token(subject)
      if (minted.status !== 200) return false
      const hit = await b.token(subject)
      return hit.status === 200 && hit.body.data.cached === true && hit.body.data.token === minted.body.data.token
    },
    ms,
    100,
  )
}

/** The log lines that start an outage, whichever way it began (refused, gone, or too slow). */
export const OUTAGE = /redis unavailable|redis is not answering in time/

export const countLogs = (replica: Replica, message: string | RegExp): number =>
  replica.logs.filter((l) => (typeof message === 'string' ? l.includes(message) : message.test(l))).length

/** The one-line timing record a test prints (and the report quotes). */
export function timing(t: Test, what: string, values: Record<string, number | string>): void {
  t.comment(`${what}: ${Object.entries(values).map(([k, v]) => `${k} ${v}`).join(', ')}`)
}

/**
 * Waits until both replicas answer `/readyz` 200 (a stuck one's reason and last Redis log
 * lines go to the report) and share state again. Answers the ms each took to be ready and
 * the ms from then until state was shared.
 */
export async function bothBack(t: Test, a: Replica, b: Replica, readyMs: number): Promise<{ ready: number[]; shared: number }> {
  const ready = await Promise.all([readyzBecomes(a, 200, readyMs), readyzBecomes(b, 200, readyMs)]).catch(async (err: Error) => {
    for (const r of [a, b]) t.comment((await r.app.inject('/readyz')).body, r.logs.filter((l) => l.includes('redis')).slice(-4).join(''))
    throw err
  })
  return { ready, shared: await sharedAgain(a, b, 5000) }
}

/** The line that says Redis is another server process (its `run_id` changed) than the one verified before. */
export const SERVER_CHANGED = 'redis is another server process than before'

/**
 * After a recovery: a cold burst over `keys` costs one mint per key across both
 * replicas, a purge through one is seen by the other, and each replica logged the
 * outage and the recovery once, and {@link SERVER_CHANGED} `serverChanges` times
 * (1 when the primary is another process now, 0 when it is the same one or a
 * Cluster, whose nodes are not told apart). Answers the burst's mints per key.
 */
export async function servingTogether(t: Test, a: Replica, b: Replica, keys: string[], perKey: number, serverChanges = 0): Promise<number> {
  const after = await coldBurst([a, b], keys, perKey)
  t.same(after.statuses, [200])
  t.equal(after.mintsPerKey, 1, 'one mint per key across the replicas again')
  const purged = keys[0] as string
  t.equal((await admin(a, 'DELETE', `/admin/tenants/acme/subjects/${purged}/tokens`)).statusCode, 204, 'purge works again')
  t.equal((await b.token(purged)).body.data.cached, false, 'and the other replica sees it')
  for (const [name, r] of [['a', a], ['b', b]] as const) {
    const outages = countLogs(r, OUTAGE)
    const recoveries = countLogs(r, 'redis available again')
    const changes = countLogs(r, SERVER_CHANGED)
    // When any is off, the report shows what this replica logged about Redis, in order.
    if (outages !== 1 || recoveries !== 1 || changes !== serverChanges) t.comment(`${name}'s Redis log lines:\n${r.logs.filter((l) => /redis/i.test(l)).join('')}`)
    t.equal(outages, 1, `${name}: the outage logged once`)
    t.equal(recoveries, 1, `${name}: the recovery logged once`)
    t.equal(changes, serverChanges, `${name}: "another server process" logged ${serverChanges} time(s)`)
  }
  return after.mintsPerKey
}
