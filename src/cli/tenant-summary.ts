import { jwtKeySource, type Tenant } from '../config/tenant-schema.js'

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}

/** How a tenant's callers authenticate, by kind and count only: never a secret, a key or a hash. */
function authCell(tenant: Tenant): string {
  const jwt = tenant.auth.jwt
  const kind =
    jwt === undefined ? undefined : jwtKeySource(jwt)
  const parts = [kind === undefined ? undefined : `jwt ${kind}`, plural(tenant.auth.apiKeys.length, 'API key')]
  return `auth: ${parts.filter((p) => p !== undefined).join(', ')}`
}

function limitsCell(tenant: Tenant): string {
  const { perSubjectPerMinute, perTenantPerMinute, upstreamMintsPerMinute } = tenant.limits
  const parts = [`${perSubjectPerMinute}/min per subject`, `${perTenantPerMinute}/min per tenant`]
  if (upstreamMintsPerMinute !== undefined) parts.push(`${upstreamMintsPerMinute} upstream mints/min`)
  return `limits: ${parts.join(', ')}`
}

function cells(tenant: Tenant): string[] {
  const allowed = tenant.creators.allowed
  return [
    tenant.id,
    tenant.enabled ? 'enabled' : 'disabled',
    authCell(tenant),
    `creators: ${allowed === '*' ? '*' : allowed.length}`,
    limitsCell(tenant),
  ]
}

/** One aligned line per tenant, e.g. `acme  enabled  auth: jwt jwksUrl, 1 API key  creators: 2  limits: …`. */
export function summariseTenants(tenants: readonly Tenant[]): string[] {
  const rows = tenants.map(cells)
  const widths = rows.reduce<number[]>((w, row) => row.map((c, i) => Math.max(c.length, w[i] ?? 0)), [])
  return rows.map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  '))
}
