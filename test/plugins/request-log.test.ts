import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import fc from 'fast-check'
import type { FastifyReply, FastifyRequest } from 'fastify'
import t, { type Test } from 'tap'
import { buildApp, type AppDeps } from '../../src/app.js'
import { pino } from 'pino'
import { createLogger, isoTime, lineWriter, plainLineWriter } from '../../src/logger.js'
import { requestLineFields } from '../../src/plugins/request-log.js'
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
    take: async () => {
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

t.test('a path no route matched is not logged: it is whatever the client sent', async (t) => {
  const b = await broker(t)
  const secret = 'eyJhbGciOiJIUzI1NiJ9.pasted-into-a-path.sig'
  const res = await b.app.inject({ method: 'GET', url: `/nope/${secret}?apiKey=also-secret` })
  t.equal(res.statusCode, 404)
  t.match(b.lines().find((l) => l.msg === 'request' && l.status === 404), { method: 'GET', path: '(no route)' })
  t.notMatch(b.logs.join(''), /pasted-into-a-path|also-secret/)
  // A matched route logs its pattern, never a path parameter.
  await b.app.inject({ method: 'GET', url: '/healthz' })
  t.ok(b.lines().some((l) => l.path === '/healthz'))
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

t.test('the request line is framed exactly as pino frames a line of the same logger', async (t) => {
  const captured: string[] = []
  const sink = new Writable({ write: (chunk, _e, cb) => cb(void captured.push(String(chunk))) })
  const logger = createLogger('info', sink)
  const write = plainLineWriter(logger.child({}, { serializers: {} }))
  t.ok(write, 'a child of a broker logger (Fastify makes one) gets the plain writer')
  const fields = { reqId: 'req-7', method: 'POST', path: '/v1/"odd"\npath', status: 200, ms: 0.4, outcome: 'ok', tenant: 'acme', cache: 'hit' }
  write?.('info', fields, 'request')
  logger.info(fields, 'request')
  const [plain, viaPino] = captured.map((l) => JSON.parse(l) as Line)
  t.same({ ...plain, time: 0 }, { ...viaPino, time: 0 })
  t.same(Object.keys(plain ?? {}), Object.keys(viaPino ?? {}), 'same keys, same order')
  t.match(plain?.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  write?.('debug', fields, 'request')
  t.equal(captured.length, 2, 'the level is honoured')
  // Fields given as JSON members (the request line's own form) frame the same line.
  write?.('info', JSON.stringify(fields).slice(1, -1), 'request')
  t.same({ ...(JSON.parse(captured[2] as string) as Line), time: 0 }, { ...viaPino, time: 0 })
  t.same(Object.keys(JSON.parse(captured[2] as string) as Line), Object.keys(viaPino ?? {}), 'same keys, same order')
  write?.('info', '', 'bare')
  t.same(Object.keys(JSON.parse(captured[3] as string) as Line), ['level', 'time', 'service', 'msg'], 'no members, no stray comma')

  t.equal(plainLineWriter(pino()), undefined, 'a logger of unknown framing is left to pino')
  t.equal(plainLineWriter(logger.child({}, { formatters: { level: (label) => ({ level: label }) } })), undefined)
})

t.test('with a logger of its own the broker still writes every request line, through pino', async (t) => {
  const lines: string[] = []
  const own = pino({ level: 'info' }, new Writable({ write: (chunk, _e, cb) => cb(void lines.push(String(chunk))) }))
  const b = await broker(t, { logger: own })
  t.equal((await b.token(await userJwt('user-1'), {})).statusCode, 200)
  t.match(lines.map((l) => JSON.parse(l) as Line).find((l) => l.msg === 'request'), { path: '/v1/token', status: 200, tenant: 'acme', cache: 'mint' })
})

t.test('the ISO time is the same text as pino.stdTimeFunctions.isoTime', async (t) => {
  for (let i = 0; i < 50; i++) {
    const before = pino.stdTimeFunctions.isoTime()
    const ours = isoTime()
    const after = pino.stdTimeFunctions.isoTime()
    t.ok(ours === before || ours === after || (ours > before && ours < after), `${ours} between ${before} and ${after}`)
    await new Promise((r) => setTimeout(r, i % 7))
  }
})

t.test('the request line\'s fields are JSON.stringify of the same object, for any values', async (t) => {
  const text = fc.oneof(fc.constantFrom('req-1', 'POST', '/v1/token', '/v1/"odd"\npath', 'acme', 'hit', '\ud800'), fc.string({ unit: 'binary', maxLength: 40 }))
  const number = fc.oneof(fc.double(), fc.integer(), fc.constantFrom(0, -0, 0.05, 12.25, Number.NaN, Number.POSITIVE_INFINITY))
  let runs = 0
  fc.assert(
    fc.property(
      fc.record({ id: text, method: text, path: text, status: fc.integer({ min: 100, max: 599 }), elapsed: number }),
      fc.option(text, { nil: undefined }),
      fc.option(fc.record({ tenant: fc.option(text, { nil: undefined }), cache: fc.option(text, { nil: undefined }), upstreamMs: fc.option(number, { nil: undefined }) }), { nil: undefined }),
      (r, outcome, tokenLog) => {
        runs += 1
        const request = { id: r.id, method: r.method, outcome, tokenLog } as unknown as FastifyRequest
        const reply = { statusCode: r.status, elapsedTime: r.elapsed } as unknown as FastifyReply
        const object: Record<string, unknown> = { reqId: r.id, method: r.method, path: r.path, status: r.status, ms: Math.round(r.elapsed * 10) / 10 }
        if (outcome !== undefined) object.outcome = outcome
        if (tokenLog?.tenant !== undefined) object.tenant = tokenLog.tenant
        if (tokenLog?.cache !== undefined) object.cache = tokenLog.cache
        if (tokenLog?.upstreamMs !== undefined) object.upstreamMs = tokenLog.upstreamMs
        const got = requestLineFields(request, reply, r.path)
        if (got !== JSON.stringify(object).slice(1, -1)) throw new Error(`differs:\n${got}\n${JSON.stringify(object)}`)
      },
    ),
    { numRuns: 3000 },
  )
  t.equal(runs, 3000)
})

t.test('fields given as JSON members reach a logger of unknown framing as an object, through pino', async (t) => {
  const lines: string[] = []
  const own = pino({ level: 'info' }, new Writable({ write: (chunk, _e, cb) => cb(void lines.push(String(chunk))) }))
  lineWriter(own)('info', '"reqId":"req-1","status":200', 'request')
  t.match(JSON.parse(lines[0] as string), { reqId: 'req-1', status: 200, msg: 'request' })
})
