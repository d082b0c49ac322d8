import t from 'tap'
import { Redis } from 'ioredis'
import { startSimulator } from '../../src/simulator/index.js'
import { assertNothingInClear, startRedisServer } from '../helpers/redis.js'
import { API_KEY, percentile, requestToken, requireDist, startBrokers, userJwt, writeTenantsFile } from './processes.js'

// No skip: without dist/ this fails with the message saying to build first.
requireDist()

t.test('three `node dist/main.js` replicas on one Redis', async (t) => {
  const redisServer = await startRedisServer(t)
  const sim = await startSimulator({ apiKeys: [API_KEY], perMinute: 1000 })
  t.teardown(() => sim.close())
  const tenants = await writeTenantsFile()
  t.teardown(() => tenants.remove())
  const brokers = await startBrokers({ count: 3, upstreamUrl: sim.url, tenantsFile: tenants.file, redisUrl: redisServer.url })
  t.teardown(() => brokers.close())
  const redis = new Redis(redisServer.url)
  t.teardown(() => redis.quit())

  for (const url of brokers.urls) t.equal((await fetch(`${url}/readyz`)).status, 200, `${url} ready`)

  const subjects = Array.from({ length: 10 }, (_, i) => `viewer-${i}@example.com`)
  const jwts = await Promise.all(subjects.map((s) => userJwt('bulk', s)))
  const answers = await Promise.all(
    Array.from({ length: 300 }, (_, i) => requestToken(brokers.urls[i % 3] as string, jwts[i % 10] as string).then((a) => ({ ...a, subject: i % 10 }))),
  )
  t.same([...new Set(answers.map((a) => a.status))], [200], '300 answers, all 200')
  t.equal(sim.stats.mints, 10, '300 concurrent requests for 10 subjects over 3 replicas: exactly 10 upstream mints')
  for (let s = 0; s < 10; s++) {
    t.equal(new Set(answers.filter((a) => a.subject === s).map((a) => a.token)).size, 1, `subject ${s}: one token on every replica`)
  }
  const ms = answers.map((a) => a.ms)
  t.comment(`latency p50 ${percentile(ms, 50).toFixed(1)} ms, p99 ${percentile(ms, 99).toFixed(1)} ms`)

  const strictJwt = await userJwt('strict', 'limited-viewer')
  const limited = await Promise.all(Array.from({ length: 15 }, (_, i) => requestToken(brokers.urls[i % 3] as string, strictJwt)))
  t.equal(limited.filter((a) => a.status === 200).length, 10, 'a limit of 10 a minute holds across the three: exactly 10 succeed')
  const refused = limited.filter((a) => a.status !== 200)
  t.equal(refused.length, 5)
  for (const a of refused) t.match(a, { status: 429, code: 'RATE_LIMITED', retryAfter: /^[1-9]\d*$/ })

  const minted = [...new Set(answers.map((a) => a.token as string))]
  const looked = await assertNothingInClear(t, redis, [API_KEY, ...minted, ...subjects, 'limited-viewer'])
  t.ok(looked >= 20, `${looked} Redis keys hold no token, API key or subject in clear`)
})
