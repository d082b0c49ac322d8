import t from 'tap'
import { redactUrl } from '../../src/simulator/logging.js'
import { acceptsApiKey, resolveOptions } from '../../src/simulator/options.js'
import { startSim } from './fixtures/simulator.js'

t.test('resolveOptions applies the defaults', async (t) => {
  const o = resolveOptions()
  t.match(o, { host: '127.0.0.1', port: 0, apiKeys: undefined, perMinute: 60, perDay: 10_000, eventIntervalMs: 1000, control: true, logger: false })
  t.ok(o.secret.length >= 43, 'a random secret of 32 bytes')
  t.not(resolveOptions().secret, o.secret, 'a new one each time')
  t.equal(o.now, Date.now)
})

t.test('resolveOptions rejects nonsense, naming the option', async (t) => {
  t.throws(() => resolveOptions({ perMinute: 0 }), /perMinute/)
  t.throws(() => resolveOptions({ perDay: 1.5 }), /perDay/)
  t.throws(() => resolveOptions({ eventIntervalMs: -1 }), /eventIntervalMs/)
  t.throws(() => resolveOptions({ port: 70_000 }), /port/)
  t.throws(() => resolveOptions({ secret: '' }), /secret/)
})

t.test('acceptsApiKey', async (t) => {
  const open = resolveOptions()
  t.ok(acceptsApiKey(open, 'anything'))
  t.notOk(acceptsApiKey(open, ''))
  t.notOk(acceptsApiKey(open, ['a', 'b']), 'a repeated query parameter is not a key')
  const listed = resolveOptions({ apiKeys: ['k1'] })
  t.ok(acceptsApiKey(listed, 'k1'))
  t.notOk(acceptsApiKey(listed, 'k2'))
})

t.test('url and wsUrl point at the listening port, secret is the signing secret', async (t) => {
  const sim = await startSim(t, { secret: 'fixed-secret' })
  t.match(sim.url, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.equal(sim.wsUrl, sim.url.replace('http:', 'ws:'))
  t.equal(sim.secret, 'fixed-secret')
})

t.test('redactUrl hides apiKey and jwtKey values', async (t) => {
  t.equal(redactUrl('/authentication/jwt?apiKey=s3cret'), '/authentication/jwt?apiKey=[redacted]')
  t.equal(redactUrl('/?uniqueId=a&jwtKey=eyJ.x.y&apikey=z'), '/?uniqueId=a&jwtKey=[redacted]&apikey=[redacted]')
  t.equal(redactUrl('/healthz'), '/healthz')
})
