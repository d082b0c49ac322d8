import { createHash } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import t from 'tap'
import clientJs, { type ClientJsOptions } from '../../src/routes/client-js.js'
import { clientDir, loadClient } from './build.js'
import type { HasTeardown } from './fake-broker.js'

await loadClient() // builds dist/client, which the plugin serves by default

/** An app with only the plugin, logging warnings into `warnings`; closed at teardown. */
async function build(t: HasTeardown, opts: ClientJsOptions = {}) {
  const warnings: string[] = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) { warnings.push(String(JSON.parse(chunk.toString()).msg)); done() },
  })
  const app = Fastify({ logger: { level: 'warn', stream } })
  await app.register(clientJs, opts)
  await app.ready()
  t.teardown(() => app.close())
  return { app, warnings }
}

const etagOf = (body: Buffer | string) => `"${createHash('sha256').update(body).digest('hex')}"`

t.test('GET /client.js serves the built module with caching and CORS headers', async (t) => {
  const { app } = await build(t)
  const built = await readFile(join(clientDir, 'index.js'))
  const res = await app.inject({ method: 'GET', url: '/client.js' })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-type'], 'application/javascript; charset=utf-8')
  t.equal(res.body, built.toString())
  t.equal(res.headers.etag, etagOf(built))
  t.equal(res.headers['cache-control'], 'public, max-age=86400')
  t.equal(res.headers['access-control-allow-origin'], '*')
  t.equal(res.headers['x-content-type-options'], 'nosniff')
})

t.test('GET /client.d.ts serves the declarations', async (t) => {
  const { app } = await build(t)
  const built = await readFile(join(clientDir, 'index.d.ts'))
  const res = await app.inject({ method: 'GET', url: '/client.d.ts' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/typescript/)
  t.equal(res.body, built.toString())
  t.match(res.body, /export declare function createTokenClient/)
  t.equal(res.headers.etag, etagOf(built))
  t.equal(res.headers['access-control-allow-origin'], '*')
})

t.test('answers 304 to a matching If-None-Match', async (t) => {
  const { app } = await build(t)
  const { headers } = await app.inject({ method: 'GET', url: '/client.js' })
  const etag = String(headers.etag)
  for (const ifNoneMatch of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
    const res = await app.inject({ method: 'GET', url: '/client.js', headers: { 'if-none-match': ifNoneMatch } })
    t.equal(res.statusCode, 304, ifNoneMatch)
    t.equal(res.body, '')
    t.equal(res.headers.etag, etag)
    t.equal(res.headers['access-control-allow-origin'], '*')
  }
  const stale = await app.inject({ method: 'GET', url: '/client.js', headers: { 'if-none-match': '"stale"' } })
  t.equal(stale.statusCode, 200)
})

t.test('reads the files once, from the given dir', async (t) => {
  const dir = t.testdir({ 'index.js': 'export const v = 1\n', 'index.d.ts': 'export declare const v: 1\n' })
  const { app } = await build(t, { dir })
  await writeFile(join(dir, 'index.js'), 'export const v = 2\n')
  const res = await app.inject({ method: 'GET', url: '/client.js' })
  t.equal(res.body, 'export const v = 1\n', 'the content held at registration')
  t.equal(res.headers.etag, etagOf('export const v = 1\n'))
})

t.test('answers 404 with the contract body, and warns once, when the client is not built', async (t) => {
  const { app, warnings } = await build(t, { dir: t.testdir({}) })
  for (const url of ['/client.js', '/client.js', '/client.d.ts']) {
    const res = await app.inject({ method: 'GET', url })
    t.equal(res.statusCode, 404)
    t.match(res.headers['content-type'], /^application\/json/)
    t.equal(res.headers['access-control-allow-origin'], '*')
    t.equal(res.headers.etag, undefined)
  }
  const res = await app.inject({ method: 'GET', url: '/client.js' })
  t.same(res.json(), { status_code: 404, code: 'NOT_FOUND', message: 'client.js is not built; run npm run build' })
  t.equal(warnings.filter((w) => w.includes('client.js is not built')).length, 1)
})
