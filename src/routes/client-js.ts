import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { errorBody, JSON_CONTENT_TYPE } from '../errors.js'

export interface ClientJsOptions {
  /** The folder holding the built `index.js` and `index.d.ts`; default: `dist/client` (see {@link clientDirs}). */
  dir?: string
}

/** One file held in memory, with its validator. */
interface Asset {
  body: Buffer
  etag: string
}

const CACHE_CONTROL = 'public, max-age=86400'

/**
 * Where the built client may be: beside the compiled server (`dist/routes` →
 * `dist/client`), else `<cwd>/dist/client` for a server run from `src` with tsx.
 */
function clientDirs(): string[] {
  return [fileURLToPath(new URL('../client/', import.meta.url)), join(process.cwd(), 'dist', 'client')]
}

async function loadAsset(dir: string, name: string): Promise<Asset | null> {
  try {
    const body = await readFile(join(dir, name))
    return { body, etag: `"${createHash('sha256').update(body).digest('hex')}"` }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
}

async function loadClient(dir: string | undefined): Promise<{ js: Asset | null; dts: Asset | null }> {
  for (const candidate of dir === undefined ? clientDirs() : [dir]) {
    const js = await loadAsset(candidate, 'index.js')
    if (js) return { js, dts: await loadAsset(candidate, 'index.d.ts') }
  }
  return { js: null, dts: null }
}

/** RFC 9110 If-None-Match: `*` or a list of entity tags, compared weakly. */
function matches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false
  if (ifNoneMatch.trim() === '*') return true
  return ifNoneMatch.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag)
}

function serve(asset: Asset | null, contentType: string, name: string) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    // Public code: any page may import it (module scripts are fetched with CORS).
    reply.header('access-control-allow-origin', '*').header('cross-origin-resource-policy', 'cross-origin')
    if (!asset) {
      return reply.code(404).header('cache-control', 'no-store').type(JSON_CONTENT_TYPE)
        .send(errorBody('NOT_FOUND', `${name} is not built; run npm run build`))
    }
    reply.header('etag', asset.etag).header('cache-control', CACHE_CONTROL).header('x-content-type-options', 'nosniff')
    if (matches(request.headers['if-none-match'], asset.etag)) return reply.code(304).send()
    return reply.type(contentType).send(asset.body)
  }
}

/**
 * Serves the browser client: `GET /client.js` and its types at
 * `GET /client.d.ts`, read once at registration and held in memory.
 *
 * @example
 * await app.register(clientJs)                    // dist/client
 * await app.register(clientJs, { dir: '/opt/client' })
 */
async function clientJs(app: FastifyInstance, opts: ClientJsOptions): Promise<void> {
  const { js, dts } = await loadClient(opts.dir)
  if (!js) app.log.warn({ dirs: opts.dir ?? clientDirs() }, 'client.js is not built; GET /client.js answers 404 (run npm run build)')
  app.get('/client.js', serve(js, 'application/javascript; charset=utf-8', 'client.js'))
  app.get('/client.d.ts', serve(js && dts, 'application/typescript; charset=utf-8', 'client.d.ts'))
}

export default fp(clientJs, { name: 'client-js', fastify: '5.x' })
