import type { FastifyInstance } from 'fastify'
import { ConfigError } from '../config/errors.js'
import { readTenantsFile } from '../config/tenants-file.js'
import type { AdminActor } from '../audit/audit-log.js'
import { BrokerError } from '../errors.js'

/**
 * Re-reads the tenants file and puts it in force (operator patches kept).
 * A bad file keeps the running config and throws BAD_REQUEST naming the field.
 * `actor`: who asked, for the audit line (an admin call, or SIGHUP).
 */
export async function reloadTenants(app: FastifyInstance, env: NodeJS.ProcessEnv, actor: AdminActor = 'admin-token'): Promise<string[]> {
  const { config, tenants, audit } = app.broker
  if (config.tenantsFile === undefined) {
    throw new BrokerError('BAD_REQUEST', 'TENANTS_FILE: not set; tenants from the environment are fixed until restart')
  }
  try {
    tenants.replace(await readTenantsFile(config.tenantsFile, env))
  } catch (err) {
    if (err instanceof ConfigError) throw new BrokerError('BAD_REQUEST', `Reload refused, config kept: ${err.issues.join('; ')}`)
    throw err
  }
  const ids = tenants.all().map((t) => t.id)
  audit.adminChange('reload', null, { tenants: ids }, actor)
  return ids
}
