import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { repeatsAuthorization, unauthenticated } from '../auth/authenticator.js'
import { ConfigError } from '../config/errors.js'
import { parseTenantPatch } from '../config/tenant-patch.js'
import type { Tenant } from '../config/tenant-schema.js'
import { BrokerError } from '../errors.js'
import { parseJson } from '../http/json-body.js'
import { reloadTenants } from './reload.js'
import { tenantView } from './tenant-view.js'

export interface AdminOptions {
  adminToken: string
  env: NodeJS.ProcessEnv
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest()

/**
 * A tenant patch as the audit line gives it: each field it sets, by dotted path, and its value
 * (`{"token.expireAfter.default": 900, "limits.upstreamMintsPerMinute": null}`; null removes an
 * override, RFC 7396). Flat, so that no key of it is one the log redacts by name (`token`):
 * the values are limits, lifetimes and switches, never secrets (the PATCH schema allows no other).
 */
export function patchedFields(patch: object, prefix = ''): Record<string, unknown> {
  const fields: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(patch)) {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) Object.assign(fields, patchedFields(value as object, `${prefix}${key}.`))
    else fields[`${prefix}${key}`] = value
  }
  return fields
}

/** `/admin/*` (contract section 3): only with `Authorization: Bearer $ADMIN_TOKEN`, compared in constant time. */
async function admin(app: FastifyInstance, opts: AdminOptions): Promise<void> {
  const expected = digest(opts.adminToken)
  const { tenants, store, tokens, counters, metrics, audit } = app.broker

  const guard = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    reply.header('cache-control', 'no-store')
    const header = request.headers.authorization
    if (header === undefined) throw unauthenticated(false)
    if (repeatsAuthorization(request.raw.rawHeaders)) throw unauthenticated(true, 'Expected one Authorization header.')
    const presented = /^Bearer +(\S+)$/i.exec(header)?.[1] ?? ''
    if (!timingSafeEqual(digest(presented), expected)) throw unauthenticated(true, 'The admin token is not valid.')
  }
  const tenantOr404 = (id: string): Tenant => {
    const tenant = tenants.get(id)
    if (tenant === undefined) throw new BrokerError('NOT_FOUND', `No tenant ${id}.`)
    return tenant
  }
  const view = (t: Tenant) => tenantView(t, tenants.override(t.id))
  type Id = { Params: { id: string } }

  app.register(async (scoped) => {
    // No CORS on /admin/: no browser origin of a tenant may read an admin answer, and a preflight gets the guard's 401.
    scoped.addHook('onRoute', (route) => {
      route.config = { ...route.config, cors: false }
    })
    scoped.addHook('onRequest', guard)
    // Operators may send a JSON merge patch with its own media type.
    scoped.addContentTypeParser('application/merge-patch+json', { parseAs: 'string' }, parseJson)

    scoped.get('/admin/tenants', async () => ({ tenants: tenants.all().map(view) }))
    scoped.get<Id>('/admin/tenants/:id', async (request) => view(tenantOr404(request.params.id)))

    scoped.patch<Id>('/admin/tenants/:id', async (request) => {
      const id = tenantOr404(request.params.id).id
      // A merge patch is a JSON object (RFC 7396 §2: any other value would replace the tenant itself); the broker's
      // parser reads an empty body as {}, so only a body that says null is refused here.
      if (request.body === null) throw new BrokerError('BAD_REQUEST', 'The patch must be a JSON object (RFC 7396 merge patch); null would replace the tenant.')
      try {
        const patch = parseTenantPatch(request.body ?? {})
        const updated = await app.broker.overrideSync.patch(id, patch)
        audit.adminChange('tenant.patch', id, { changes: patchedFields(patch) })
        return view(updated)
      } catch (err) {
        if (err instanceof ConfigError) throw new BrokerError('BAD_REQUEST', err.issues.join('; '))
        throw err
      }
    })

    scoped.get<Id>('/admin/tenants/:id/usage', async (request) => {
      const tenant = tenantOr404(request.params.id)
      const [usage, windows, mints] = await Promise.all([
        metrics.usage(tenant.id),
        app.limits.windows(tenant),
        counters.peek(`mints:${tenant.id}`).catch(() => ({ count: 0, resetInMs: 0 })),
      ])
      return {
        tenant: tenant.id,
        scope: 'counts since this replica started; windows are shared across replicas',
        ...usage,
        windows: {
          tenantRequests: windows.tenant,
          upstreamMints: {
            // Calls made: a refused attempt is not counted (Minter's take).
            count: mints.count,
            limit: tenant.limits.upstreamMintsPerMinute ?? null,
            resetInSeconds: Math.ceil(mints.resetInMs / 1000),
          },
        },
      }
    })

    scoped.delete<{ Params: { id: string; subject: string } }>(
      '/admin/tenants/:id/subjects/:subject/tokens',
      async (request, reply) => {
        const tenant = tenantOr404(request.params.id)
        // The purge moves the subject's generation on even with nothing cached: a mint in flight is revoked too.
        // 404 only when there was nothing to revoke: no token cached, no mint in flight here or (shared store) on another replica.
        const purged = await store.purgeSubject(tenant.id, request.params.subject)
        const minting = tokens.mintingFor(tenant.id, request.params.subject)
        // A failed mint of the subject held or kept here is no one's answer after the purge (the next request mints anew).
        tokens.forgetFailures(tenant.id, request.params.subject)
        if (purged.tokens === 0 && !purged.minting && !minting) {
          // A tenant that shares tokens by grant caches none under a subject: say so rather than "none cached".
          if (tenant.token.share === 'grant') {
            throw new BrokerError('NOT_FOUND', `Tenant ${tenant.id} shares tokens by grant (token.share: grant): no token is cached for a subject, so none can be purged for one.`)
          }
          throw new BrokerError('NOT_FOUND', 'No cached tokens for that subject.')
        }
        audit.adminChange('tokens.purge', tenant.id, { tokens: purged.tokens })
        return reply.code(204).send()
      },
    )

    scoped.post('/admin/reload', async () => ({ status: 'reloaded', tenants: await reloadTenants(app, opts.env) }))

    // Any other /admin/ path: the token is checked first (401), then it is a 404.
    const unknown = async (request: FastifyRequest) => {
      throw new BrokerError('NOT_FOUND', `No route ${request.method} ${request.url.split('?')[0]}.`)
    }
    scoped.all('/admin', unknown)
    scoped.all('/admin/*', unknown)
  })
}

export default fp(admin, { name: 'admin-routes', fastify: '5.x', dependencies: ['broker-services', 'broker-limits'] })
