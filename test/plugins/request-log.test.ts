import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { buildApp, type AppDeps } from '../../src/app.js'
import { createLogger } from '../../src/logger.js'
import { startSimulator } from '../../src/simulator/index.js'
import { acme, API_KEY, configFor, userJwt } from '../helpers/broker.js'

type Line = Record<string, unknown>

/** A broker with a test route and hook added before it is ready (buildBroker's app is ready already). */
async function broker(t: Test, deps: AppDeps = {}, extend: (app: FastifyInstance) => void = () => {}) {
  const sim = await startSimulator({ apiKeys: [API_KEY] })
  const logs: string[] = []
  const sink = new Writable({ write: (chunk, _e, cb) => cb(void logs.push(String(chunk))) })
  const app = await buildApp(configFor(sim.url, [acme({ limits: { upstreamMintsPerMinute: 5 } })]), { logger: createLogger('debug', sink), ...deps })
  extend(app)
  await app.ready()
  t.teardown(async () => {
    await app.close()
    await sim.close()
  })
  const token = async (jwt: string, body: unknown) =>
    app.inject({ method: 'POST', url: '/v1/token', headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' }, payload: JSON.stringify(body) })
  return { app, logs, lines: (): Line[] => logs.map((l) => JSON.parse(l) as Line), token }
}

t.test('the request line carries the request id and only its own fields', async (t) => {
  const b = await broker(t, {}, (app) =>
    app.addHook('onSend', async (request) => {
      // Whatever else lands on tokenLog never reaches the (unredacted) request line.
      Object.assign(request.tokenLog ?? {}, { token: 'must-not-appear', extra: 1 })
    }),
  )
  const res = await b.token(await userJwt('user-1'), { allowed_creators: ['a1'] })
  t.equal(res.statusCode, 200)
  const line = b.lines().find((l) => l.msg === 'request' && l.path === '/v1/token')
  t.match(line, { reqId: String, method: 'POST', status: 200, tenant: 'acme', outcome: 'ok', cache: 'mint', upstreamMs: Number })
  t.same(
    Object.keys(line ?? {}).sort(),
    ['cache', 'level', 'method', 'ms', 'msg', 'outcome', 'path', 'reqId', 'service', 'status', 'tenant', 'time', 'upstreamMs'],
    'no field beyond the line’s own',
  )
  t.notMatch(b.logs.join(''), /must-not-appear/)
})

t.test('logging through request.log binds the request id, and redaction holds there', async (t) => {
  const broken = {
    increment: async () => {
      throw new TypeError('counter exploded')
    },
    peek: async () => ({ count: 0, resetInMs: 0 }),
    readQuota: async () => undefined,
    writeQuota: async () => {},
    close: async () => {},
  }
  const b = await broker(t, { counters: broken }, (app) =>
    app.get('/log-a-secret', async (request) => {
      request.log.info({ token: 'secret-in-a-field', headers: { authorization: 'Bearer secret-header' } }, 'careless')
      return { ok: true }
    }),
  )
  const res = await b.token(await userJwt('u1'), {})
  t.equal(res.statusCode, 500)
  const error = b.lines().find((l) => l.msg === 'unhandled error')
  const request = b.lines().find((l) => l.msg === 'request' && l.path === '/v1/token')
  t.ok(typeof error?.reqId === 'string' && error.reqId === request?.reqId, 'the error line and the request line share the request id')

  await b.app.inject({ method: 'GET', url: '/log-a-secret' })
  t.match(
    b.lines().find((l) => l.msg === 'careless'),
    { reqId: String, token: '[redacted]', headers: { authorization: '[redacted]' } },
  )
  t.notMatch(b.logs.join(''), /secret-in-a-field|secret-header/)
})

t.test('probes log their request line at debug only', async (t) => {
  const b = await broker(t)
  await b.app.inject({ method: 'GET', url: '/healthz' })
  t.match(b.lines().find((l) => l.path === '/healthz'), { level: 20, status: 200 })
  b.app.log.level = 'info'
  const before = b.logs.length
  await b.app.inject({ method: 'GET', url: '/healthz' })
  t.equal(b.logs.length, before, 'nothing at info')
})
