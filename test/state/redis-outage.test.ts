import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { startSimulator } from '../../src/simulator/index.js'
import { acme, API_KEY, configFor } from '../helpers/broker.js'
import { freePort, startRedisServer } from '../helpers/redis.js'
import { until } from '../helpers/redis-topologies.js'
import { startReplica, type Replica } from './replicas.js'

/** Redis trouble must stay well inside this: a fail-fast client answers in milliseconds, a timeout in 400 ms. */
const BOUND_MS = 2000

/** Polls `/readyz` until it answers `status`; fails after `ms`. */
async function readyzBecomes(replica: Replica, status: number, ms: number): Promise<number> {
  const started = Date.now()
  while ((await replica.ready()) !== status) {
    if (Date.now() - started > ms) throw new Error(`/readyz did not become ${status} within ${ms} ms`)
    await sleep(50)
  }
  return Date.now() - started
}

/** Requests from `workers` loops over the replicas and 20 subjects until `stop` aborts, answers pushed to `results` as they come. */
async function traffic(replicas: Replica[], stop: AbortSignal, workers = 8, results: Array<{ status: number; ms: number; at: number }> = []) {
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      for (let i = 0; !stop.aborted; i++) {
        const replica = replicas[(w + i) % replicas.length] as Replica
        const r = await replica.token(`user-${(w * 7 + i) % 20}`).catch(() => ({ status: 0, ms: Infinity }))
        results.push({ status: r.status, ms: r.ms, at: Date.now() })
      }
    }),
  )
  return results
}

function config(upstream: string, redisUrl: string) {
  // Limits no traffic here can reach (a fast machine sends well over the default 6,000 a minute per tenant): a 429 would hide what is measured.
  const c = configFor(upstream, [acme({ limits: { perSubjectPerMinute: 1_000_000, perTenantPerMinute: 1_000_000 } })], { redisUrl, logLevel: 'info' })
  // Room for a loaded CI machine: an upstream timeout here would be a 503 that has nothing to do with Redis.
  c.upstream.timeoutMs = 5000
  return c
}
const count = (logs: string[], message: string) => logs.filter((l) => l.includes(message)).length

t.test('Redis killed mid-traffic: no 5xx, nothing hangs, /readyz 503; back by itself when Redis returns', async (t) => {
  const redis = await startRedisServer(t)
  const sim = await startSimulator({ apiKeys: [API_KEY], perMinute: 10_000 })
  t.teardown(() => sim.close())
  const a = await startReplica(t, config(sim.url, redis.url))
  const b = await startReplica(t, config(sim.url, redis.url))
  t.equal(await a.ready(), 200)
  t.equal((await a.token('before')).body.data.cached, false)
  t.equal((await b.token('before')).body.data.cached, true, 'shared before the outage')

  const stop = new AbortController()
  t.teardown(() => stop.abort())
  const results: Array<{ status: number; ms: number; at: number }> = []
  const running = traffic([a, b], stop.signal, 8, results)
  await sleep(300)
  const killedAt = Date.now()
  await redis.kill()
  const noticed = await readyzBecomes(a, 503, BOUND_MS)
  t.ok(noticed < BOUND_MS, `/readyz said 503 after ${noticed} ms`)
  t.match((await a.app.inject('/readyz')).json(), { status: 'unavailable', reasons: ['redis: unavailable'] })
  // The contract's error body too: every answer of the server uses it.
  t.match((await a.app.inject('/readyz')).json(), { status_code: 503, code: 'NOT_READY', message: 'Not ready: redis: unavailable' })
  // Traffic goes on without Redis: waited for, not counted after a fixed second (a loaded machine answers fewer).
  const served = await until('50 requests answered while Redis is away', async () => results.filter((r) => r.at > killedAt).length > 50, 15_000)
  stop.abort()
  await running
  t.pass(`50 requests answered ${served} ms into the outage`)
  t.same([...new Set(results.map((r) => r.status))], [200], 'every request answered 200')
  const slowest = Math.max(...results.map((r) => r.ms))
  t.ok(slowest < BOUND_MS, `slowest request ${Math.round(slowest)} ms`)

  const mints = sim.stats.mints
  await a.token('during')
  t.equal((await a.token('during')).body.data.cached, true, 'a replica still caches for itself')
  t.equal(sim.stats.mints, mints + 1)
  t.equal(count(a.logs, 'redis unavailable'), 1, 'the outage is logged once, not per command')

  await redis.start()
  const back = await readyzBecomes(a, 200, 5000)
  await readyzBecomes(b, 200, 5000)
  t.pass(`/readyz 200 again ${back} ms after Redis returned`)
  t.equal(count(a.logs, 'redis available again'), 1)
  t.equal((await a.token('after')).body.data.cached, false)
  t.equal((await b.token('after')).body.data.cached, true, 'tokens are shared again')
})

t.test('Redis down at start: the broker starts, serves and caches; readiness follows Redis', async (t) => {
  const port = await freePort()
  const sim = await startSimulator({ apiKeys: [API_KEY] })
  t.teardown(() => sim.close())
  const started = Date.now()
  const replica = await startReplica(t, config(sim.url, `redis://127.0.0.1:${port}`))
  t.ok(Date.now() - started < 3000, `started in ${Date.now() - started} ms`)
  t.equal(await replica.ready(), 503)
  const first = await replica.token('alice')
  t.equal(first.status, 200)
  t.equal((await replica.token('alice')).body.data.cached, true)
  t.equal(sim.stats.mints, 1)
  await startRedisServer(t, port)
  await readyzBecomes(replica, 200, 5000)
  t.equal((await replica.token('bob')).status, 200)
})

t.test('Redis frozen (connected, silent): requests stay bounded, /readyz 503, and it recovers on its own', async (t) => {
  const redis = await startRedisServer(t)
  const sim = await startSimulator({ apiKeys: [API_KEY], perMinute: 10_000 })
  t.teardown(() => sim.close())
  const replica = await startReplica(t, config(sim.url, redis.url))
  await replica.token('warm')
  redis.pause()
  t.teardown(() => redis.resume())
  const stop = new AbortController()
  const running = traffic([replica], stop.signal, 4)
  await sleep(1500)
  stop.abort()
  const results = await running
  t.same([...new Set(results.map((r) => r.status))], [200], `${results.length} requests, all 200`)
  const slowest = Math.max(...results.map((r) => r.ms))
  t.ok(slowest < BOUND_MS, `slowest request ${Math.round(slowest)} ms (one command timeout, then local state)`)
  t.equal(await replica.ready(), 503)
  t.equal(count(replica.logs, 'not answering in time'), 1)
  redis.resume()
  await readyzBecomes(replica, 200, 5000)
  t.equal((await replica.token('after')).status, 200)
})
