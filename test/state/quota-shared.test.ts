import t from 'tap'
import { startSimulator } from '../../src/simulator/index.js'
import { acme, API_KEY, configFor } from '../helpers/broker.js'
import { redisForTest, TEST_REDIS_URL } from '../helpers/redis.js'
import { startReplica } from './replicas.js'

t.test("a replica that never minted serves a hit with the upstream's last X-RateLimit-* values", async (t) => {
  const { prefix } = await redisForTest(t)
  const sim = await startSimulator({ apiKeys: [API_KEY], perMinute: 2 })
  t.teardown(() => sim.close())
  const config = configFor(sim.url, [acme()], { redisUrl: TEST_REDIS_URL })
  const a = await startReplica(t, config, { keyPrefix: prefix })
  const b = await startReplica(t, config, { keyPrefix: prefix })
  const minted = await a.token('u1')
  t.equal(minted.headers['x-ratelimit-remaining'], '1')
  const hit = await b.token('u1')
  t.equal(hit.body.data.cached, true)
  t.equal(hit.headers['x-ratelimit-limit'], '2')
  t.equal(hit.headers['x-ratelimit-remaining'], '1')
  t.equal(hit.headers['x-ratelimit-reset'], minted.headers['x-ratelimit-reset'])

  t.equal((await a.token('u2')).headers['x-ratelimit-remaining'], '0')
  const refused = await b.token('u3')
  t.equal(refused.status, 429, 'b does not call an upstream that a has seen spent')
  t.equal(refused.body.code, 'UPSTREAM_RATE_LIMITED')
  t.equal(sim.stats.requests, 2)
})
