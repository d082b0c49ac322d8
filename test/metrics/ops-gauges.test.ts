import t from 'tap'
import { createMetrics } from '../../src/metrics/metrics.js'
import { buildBroker, userJwt } from '../helpers/broker.js'

async function scrape(b: Awaited<ReturnType<typeof buildBroker>>): Promise<string> {
  return (await b.app.inject({ method: 'GET', url: '/metrics' })).body
}

t.test('the circuit gauge follows the breaker: 0 closed, 1 once failures open it', async (t) => {
  const b = await buildBroker(t)
  t.match(await scrape(b), /^tiktools_broker_upstream_circuit_open 0$/m)
  b.sim.setFaults({ mode: 'error500' })
  for (let i = 0; i < 5; i++) t.equal((await b.token(await userJwt(`u${i}`), {})).status, 502)
  t.equal((await b.token(await userJwt('u9'), {})).status, 503, 'the circuit is open')
  t.match(await scrape(b), /^tiktools_broker_upstream_circuit_open 1$/m)
})

t.test('the Redis gauge: absent without Redis, else what the readiness checks say', async (t) => {
  const none = await buildBroker(t)
  t.notMatch(await scrape(none), /tiktools_broker_redis_ready/, 'no Redis configured: no series (a 0 would alert)')

  let reason: string | undefined
  let calls = 0
  const b = await buildBroker(t, {
    deps: {
      readiness: [
        async () => {
          calls += 1
          return reason
        },
      ],
    },
  })
  t.match(await scrape(b), /^tiktools_broker_redis_ready 1$/m)
  reason = 'redis: unavailable'
  t.match(await scrape(b), /^tiktools_broker_redis_ready 0$/m)
  t.equal((await b.app.inject({ method: 'GET', url: '/readyz' })).statusCode, 503, '/readyz agrees')
  reason = undefined
  t.match(await scrape(b), /^tiktools_broker_redis_ready 1$/m)
  t.ok(calls >= 3, 'read at scrape time')
})

t.test('a throwing readiness check reads as not ready', async (t) => {
  const b = await buildBroker(t, { deps: { readiness: [async () => Promise.reject(new Error('boom'))] } })
  t.match(await scrape(b), /^tiktools_broker_redis_ready 0$/m)
})

t.test('the quota ledger metrics are declared with their labels', async (t) => {
  const metrics = createMetrics({ defaultMetrics: false })
  metrics.ledgerRefusal('blocked')
  metrics.ledgerRefusal('spent')
  metrics.ledgerRefusal('spent')
  metrics.watchLedger(() => ({ blockSeconds: 42, inFlight: 3 }))
  const text = await metrics.registry.metrics()
  t.match(text, /^tiktools_broker_ledger_refusals_total\{reason="blocked"\} 1$/m)
  t.match(text, /^tiktools_broker_ledger_refusals_total\{reason="spent"\} 2$/m)
  t.match(text, /^tiktools_broker_ledger_block_seconds 42$/m)
  t.match(text, /^tiktools_broker_ledger_in_flight 3$/m)
})
