import t from 'tap'
import { Redis } from 'ioredis'
import { startRedisServer } from '../helpers/redis.js'
import { until } from '../helpers/redis-topologies.js'
import { startScriptedUpstream, tokenAnswer } from '../helpers/scripted-upstream.js'
import { mintBroker } from '../mint/harness.js'

// README, "Revocation holds": a token minted before a purge is neither cached nor served, on any replica. Here the purge
// reaches Redis while a mint is in flight, and Redis goes away before that mint lands: only Redis knew of the purge, so
// the token must not be kept in the replica's local memory (and served from it for the whole outage) either.
t.test('a purge that reached Redis during a mint, then Redis gone before it lands: the pre-purge token is not served', async (t) => {
  const server = await startRedisServer(t)
  const redis = { url: server.url, prefix: `tkb:test:purge-outage:${process.pid}:` }
  const up = await startScriptedUpstream(t)
  const a = await mintBroker(t, up.url, { redis })
  const b = await mintBroker(t, up.url, { redis })
  const now = () => Math.floor(Date.now() / 1000)
  // Something for the purge to find (another grant of alice's), so that it answers 204 on the replica that is not minting.
  up.autoAnswer(() => tokenAnswer(now(), 600))
  t.equal((await a.token('alice', { allowed_creators: ['a2'] })).status, 200)
  up.autoAnswer(undefined)

  const inFlight = a.token('alice') // reads alice's purge generation from Redis, then calls tik.tools
  const call = await up.next()
  t.equal(await b.purge('alice'), 204, 'the purge reached Redis')
  await server.kill()
  up.autoAnswer(() => tokenAnswer(now(), 600))
  const stale = tokenAnswer(now(), 600)
  call.answer(stale)
  const served = await inFlight
  t.equal(served.status, 200, 'the request is still answered')
  t.not(served.body.data.token, (stale.body as { data: { token: string } }).data.token, 'with a token minted after the purge, not the one in flight')
  t.equal(up.calls, 3, 'minted again once')
  const later = await a.token('alice')
  t.not(later.body.data.token, (stale.body as { data: { token: string } }).data.token, 'nor is the pre-purge token served from local memory later in the outage')
})

// A Redis that answers reads but refuses writes (OOM here; MISCONF after a failed RDB save is the same) is an outage:
// every token written to it would be lost, and every request a mint. Local state serves, and caches, until writes work.
t.test('Redis refusing writes (OOM): 200 after one mint, then cached locally; /readyz 503 until writes go through', async (t) => {
  const server = await startRedisServer(t)
  const up = await startScriptedUpstream(t)
  const a = await mintBroker(t, up.url, { redis: { url: server.url, prefix: `tkb:test:oom:${process.pid}:` } })
  const admin = new Redis(server.url)
  t.teardown(() => void admin.disconnect())
  await admin.config('SET', 'maxmemory-policy', 'noeviction')
  await admin.config('SET', 'maxmemory', '1')
  const now = () => Math.floor(Date.now() / 1000)
  up.autoAnswer(() => tokenAnswer(now(), 600))
  const res = await a.token('alice')
  t.equal(res.status, 200, 'served')
  t.equal(up.calls, 1, 'after one upstream mint')
  const again = await a.token('alice')
  t.equal(again.body.data.cached, true, 'the next request is a hit (local state), not another mint')
  t.equal(up.calls, 1)
  t.equal(await a.ready(), 503, '/readyz says Redis is unavailable')
  await admin.config('SET', 'maxmemory', '0')
  await until('ready again', async () => (await a.ready()) === 200, 5000, 50)
})
