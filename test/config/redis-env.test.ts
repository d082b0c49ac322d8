import t from 'tap'
import { ConfigError, loadConfig } from '../../src/config/index.js'
import { describeRedisTarget, parseHostPort, redisTargetOf } from '../../src/config/redis-target.js'

const base = { TIKTOOLS_API_KEY: 'key', AUTH_JWT_SECRET: 'a-secret' }

async function problems(env: NodeJS.ProcessEnv): Promise<string[]> {
  try {
    await loadConfig({ ...base, ...env })
  } catch (err) {
    if (err instanceof ConfigError) return err.issues
    throw err
  }
  return []
}

t.test('no Redis variable: memory, as before', async (t) => {
  const c = await loadConfig(base)
  t.equal(c.redis, undefined)
  t.equal(redisTargetOf(c), undefined)
})

t.test('REDIS_URL: the URL form, unchanged; credentials and TLS variables fill in', async (t) => {
  const c = await loadConfig({ ...base, REDIS_URL: 'redis://:pw@redis.internal:6380/2' })
  t.equal(c.redisUrl, 'redis://:pw@redis.internal:6380/2')
  t.same(c.redis, { kind: 'url', url: 'redis://:pw@redis.internal:6380/2', tls: false })
  t.equal(describeRedisTarget(c.redis!), 'url redis.internal:6380/2', 'no password in the description')
  const tls = await loadConfig({ ...base, REDIS_URL: 'redis://redis:6379', REDIS_PASSWORD: 'pw', REDIS_TLS: 'true' })
  t.match(tls.redis, { kind: 'url', password: 'pw', tls: true })
})

t.test('REDIS_SENTINELS + REDIS_SENTINEL_MASTER: the Sentinel form', async (t) => {
  const c = await loadConfig({
    ...base,
    REDIS_SENTINELS: 's1.internal:26379, 10.0.0.2:26380,[::1]:26381',
    REDIS_SENTINEL_MASTER: 'mymaster',
    REDIS_USERNAME: 'broker',
    REDIS_PASSWORD: 'hunter2-secret',
    REDIS_TLS: '1',
  })
  t.same(c.redis, {
    kind: 'sentinel',
    name: 'mymaster',
    sentinels: [
      { host: 's1.internal', port: 26379 },
      { host: '10.0.0.2', port: 26380 },
      { host: '::1', port: 26381 },
    ],
    username: 'broker',
    password: 'hunter2-secret',
    tls: true,
  })
  t.equal(c.redisUrl, undefined)
  const text = describeRedisTarget(c.redis!)
  t.equal(text, 'sentinel mymaster via s1.internal:26379,10.0.0.2:26380,[::1]:26381 (tls)')
  t.notMatch(text, /hunter2/)
})

t.test('REDIS_CLUSTER_NODES: the Cluster form', async (t) => {
  const c = await loadConfig({ ...base, REDIS_CLUSTER_NODES: 'n1:7000,n2:7001', REDIS_PASSWORD: 'pw' })
  t.same(c.redis, { kind: 'cluster', nodes: [{ host: 'n1', port: 7000 }, { host: 'n2', port: 7001 }], password: 'pw', tls: false })
  t.equal(describeRedisTarget(c.redis!), 'cluster via n1:7000,n2:7001')
})

t.test('exactly one form, each complete; a bad address names its variable', async (t) => {
  t.match(await problems({ REDIS_URL: 'redis://r:6379', REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_MASTER: 'm' }), [
    /^REDIS_SENTINELS: set only one of REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER_NODES/,
  ])
  t.match(await problems({ REDIS_SENTINELS: 's:26379', REDIS_CLUSTER_NODES: 'n:7000', REDIS_SENTINEL_MASTER: 'm' }), [
    /^REDIS_CLUSTER_NODES: set only one of/,
  ])
  t.match(await problems({ REDIS_SENTINELS: 's:26379' }), [/^REDIS_SENTINEL_MASTER: required with REDIS_SENTINELS/])
  t.match(await problems({ REDIS_SENTINEL_MASTER: 'mymaster' }), [/^REDIS_SENTINELS: required with REDIS_SENTINEL_MASTER/])
  t.match(await problems({ REDIS_SENTINELS: 's1:26379,s2', REDIS_SENTINEL_MASTER: 'm' }), [/^REDIS_SENTINELS: "s2" is not host:port/])
  t.match(await problems({ REDIS_CLUSTER_NODES: 'n1:70000' }), [/^REDIS_CLUSTER_NODES: "n1:70000" is not host:port/])
  t.match(await problems({ REDIS_CLUSTER_NODES: 'redis://n1:7000' }), [/^REDIS_CLUSTER_NODES: "redis:\/\/n1:7000" is not host:port/])
  t.match(await problems({ REDIS_PASSWORD: 'pw' }), [/^REDIS_PASSWORD: set REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES as well/])
  t.match(await problems({ REDIS_URL: 'redis://r:6379', REDIS_TLS: 'maybe' }), [/^REDIS_TLS: expected true or false/])
  const all = (await problems({ REDIS_SENTINELS: 'x:1', REDIS_SENTINEL_MASTER: 'm', REDIS_PASSWORD: 'hunter2-secret', REDIS_URL: 'redis://r:1' })).join('\n')
  t.notMatch(all, /hunter2/, 'no password in a message')
  t.same(await problems({ REDIS_SENTINELS: '', REDIS_CLUSTER_NODES: ' ' }), [], 'empty means unset')
})

t.test('host:port parsing', async (t) => {
  t.same(parseHostPort('redis-0.redis.svc.cluster.local:6379'), { host: 'redis-0.redis.svc.cluster.local', port: 6379 })
  t.same(parseHostPort('[fe80::1]:7000'), { host: 'fe80::1', port: 7000 })
  for (const bad of ['host', ':6379', 'host:', 'host:0', 'host:65536', 'ho st:1', '-host:1', 'fe80::1:7000']) t.equal(parseHostPort(bad), undefined, bad)
})
