import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parse as parseYaml } from 'yaml'
import { loadConfig } from '../../src/config/index.js'
import { command, spawnRedis, until } from '../helpers/redis-topologies.js'

// No Docker here: the compose file's `sentinel` profile is checked for shape, and the
// Sentinel configuration its services write is run for real by a local redis-server.
const root = fileURLToPath(new URL('../../', import.meta.url))

interface Service {
  image?: string
  profiles?: string[]
  command?: string[]
  environment?: Record<string, string>
  depends_on?: Record<string, unknown>
  healthcheck?: { test?: string[] }
}
const compose = parseYaml(await readFile(`${root}docker-compose.yml`, 'utf8'), { merge: true }) as { services: Record<string, Service> }
const services = compose.services

function envFile(text: string): Record<string, string> {
  const env: Record<string, string> = {}
  for (const line of text.split(/\r?\n/).map((l) => l.trim())) {
    const eq = line.indexOf('=')
    if (line !== '' && !line.startsWith('#') && eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1)
  }
  return env
}
const sentinelEnv = envFile(await readFile(`${root}deploy/sentinel.env`, 'utf8'))

/** Compose's `${VAR-default}` / `${VAR:-default}` with `vars`, enough for the broker's environment block. */
const interpolate = (value: string, vars: Record<string, string>) =>
  value.replace(/\$\{(\w+)(:?-)([^}]*)\}/g, (_, name: string, op: string, fallback: string) => {
    const v = vars[name]
    return v === undefined || (op === ':-' && v === '') ? fallback : v
  })

const sentinels = ['sentinel-1', 'sentinel-2', 'sentinel-3']
const sentinelConf = (s: Service) => /<<'CONF'\n([\s\S]*?)\nCONF/.exec(s.command?.join(' ') ?? '')?.[1] ?? ''

t.test('the sentinel profile: a replica of `redis` and three Sentinels watching it, each health-checked', async (t) => {
  t.same(services['redis-replica']?.profiles, ['sentinel'])
  t.match(services['redis-replica']?.command?.join(' '), /--replicaof redis 6379/)
  for (const name of sentinels) {
    const s = services[name] as Service
    t.same(s.profiles, ['sentinel'], `${name} only with the profile`)
    t.match(s.command?.at(-1), /exec redis-server \/tmp\/sentinel\.conf --sentinel/, `${name} runs redis-server --sentinel`)
    t.match(sentinelConf(s), /^sentinel monitor mymaster redis 6379 2$/m, `${name} watches redis:6379 as mymaster, quorum 2 of 3`)
    t.ok(s.healthcheck?.test?.includes('26379'), `${name} health-checked on its port`)
  }
  for (const name of ['redis', 'broker', 'proxy']) t.equal(services[name]?.profiles, undefined, `${name} runs in every profile`)
})

t.test('the broker: REDIS_URL by default; deploy/sentinel.env turns it into the Sentinel form, which the config accepts', async (t) => {
  const env = services.broker?.environment ?? {}
  const resolved = (vars: Record<string, string>) =>
    Object.fromEntries(['REDIS_URL', 'REDIS_SENTINELS', 'REDIS_SENTINEL_MASTER'].map((k) => [k, interpolate(env[k] ?? '', vars)]))
  t.same(resolved({}), { REDIS_URL: 'redis://redis:6379', REDIS_SENTINELS: '', REDIS_SENTINEL_MASTER: '' }, 'without the env file: one Redis, as before')
  const withSentinels = resolved(sentinelEnv)
  t.equal(sentinelEnv.COMPOSE_PROFILES, 'sentinel')
  const config = await loadConfig({ TIKTOOLS_API_KEY: 'k', AUTH_JWT_SECRET: 'x'.repeat(32), ...withSentinels })
  t.match(config.redis, {
    kind: 'sentinel',
    name: 'mymaster',
    sentinels: sentinels.map((host) => ({ host, port: 26379 })),
  })
  const monitored = /^sentinel monitor (\S+)/m.exec(sentinelConf(services['sentinel-1'] as Service))?.[1]
  t.equal(config.redis?.kind === 'sentinel' && config.redis.name, monitored, 'the broker asks for the name the Sentinels monitor')
})

t.test("the Sentinels' configuration runs: a local redis-server --sentinel accepts it and monitors the primary", async (t) => {
  const primary = await spawnRedis(t)
  const conf = sentinelConf(services['sentinel-1'] as Service)
    .replace(/^port \d+$/m, '')
    .replace('mymaster redis 6379', `mymaster 127.0.0.1 ${primary.port}`)
  const sentinel = await spawnRedis(t, [], { sentinelConfig: conf })
  await until('the Sentinel monitors mymaster', async () => {
    const info = (await command(sentinel.port, 'SENTINEL', 'MASTER', 'mymaster')) as string[]
    return info[info.indexOf('quorum') + 1] === '2' && info[info.indexOf('down-after-milliseconds') + 1] === '5000'
  })
  t.pass('accepted, quorum 2, down after 5 s')
})
