import { readFileSync } from 'node:fs'
import t from 'tap'
import { parse } from 'yaml'
import { buildApp } from '../../src/app.js'
import { ERRORS } from '../../src/errors.js'
import { acme, configFor } from '../helpers/broker.js'

const spec = parse(readFileSync(new URL('../../openapi.yaml', import.meta.url), 'utf8'))
const METHODS = ['get', 'post', 'put', 'patch', 'delete', 'options']

/** The app's routes as `METHOD /path`, from Fastify's own route tree (HEAD and wildcard routes left out; the token route's preflight is a route of its own). */
async function appRoutes(adminToken?: string): Promise<Set<string>> {
  const app = await buildApp(configFor('http://127.0.0.1:9', [acme()], { logLevel: 'silent', adminToken }))
  await app.ready()
  const tree = app.printRoutes({ commonPrefix: false })
  await app.close()
  // The tree nests shared prefixes: a line's depth is where its "── " stands, its path is relative to its parent.
  const routes = new Set<string>()
  const stack: string[] = []
  for (const line of tree.split('\n')) {
    const at = line.indexOf('── ')
    if (at < 0) continue
    const depth = (at - 1) / 4
    const m = /^(\S+)(?: \(([^)]+)\))?/.exec(line.slice(at + 3))
    if (m === null) continue
    stack.length = depth
    stack.push(m[1] as string)
    const path = stack.join('')
    if (m[2] === undefined || path.includes('*') || path === '/admin') continue
    for (const method of m[2].split(', ')) if (method !== 'HEAD') routes.add(`${method} ${path}`)
  }
  return routes
}

function specRoutes(): Set<string> {
  const routes = new Set<string>()
  for (const [path, item] of Object.entries(spec.paths as Record<string, Record<string, unknown>>)) {
    for (const method of Object.keys(item)) {
      if (METHODS.includes(method)) routes.add(`${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`)
    }
  }
  return routes
}

t.test('openapi.yaml documents exactly the routes the app serves', async (t) => {
  const served = await appRoutes('an-admin-token-of-sufficient-length')
  t.same([...specRoutes()].sort(), [...served].sort())
})

t.test('every error code is unique, in openapi.yaml and in the README', async (t) => {
  const codes = Object.keys(ERRORS)
  t.equal(new Set(codes).size, codes.length)
  t.same([...spec.components.schemas.Error.properties.code.enum].sort(), [...codes].sort())
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
  for (const code of codes) t.match(readme, new RegExp(`\`${code}\``), `README documents ${code}`)
})

t.test('GET /openapi.yaml serves the repository file', async (t) => {
  const app = await buildApp(configFor('http://127.0.0.1:9', [acme()], { logLevel: 'silent' }))
  t.teardown(() => app.close())
  const res = await app.inject('/openapi.yaml')
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /yaml/)
  t.equal(res.body, readFileSync(new URL('../../openapi.yaml', import.meta.url), 'utf8'))
})
