import { jwtKeySource, type Tenant } from '../config/tenant-schema.js'
import type { TenantPatch } from '../config/tenant-patch.js'

/** How a tenant's user JWTs are checked, without the key material. */
function authView(tenant: Tenant) {
  const jwt = tenant.auth.jwt
  return {
    jwt:
      jwt === undefined
        ? null
        : {
            issuer: jwt.issuer ?? null,
            audience: jwt.audience ?? null,
            key: jwtKeySource(jwt),
            jwksUrl: jwt.jwksUrl === undefined ? null : redactUrl(jwt.jwksUrl),
            algorithms: jwt.algorithms,
            subjectClaim: jwt.subjectClaim,
            creatorsClaim: jwt.creatorsClaim ?? null,
            audienceClaim: jwt.audienceClaim,
            authorizedParties: jwt.authorizedParties ?? null,
            clockToleranceSeconds: jwt.clockToleranceSeconds,
          },
    apiKeys: tenant.auth.apiKeys.length,
  }
}

/** A URL without credentials or query, which may carry them. */
function redactUrl(url: string): string {
  const u = new URL(url)
  return `${u.origin}${u.pathname}`
}

/** A tenant's effective policy and limits as the admin API shows it: secrets never, key hashes never. */
export function tenantView(tenant: Tenant, override: TenantPatch | undefined) {
  return {
    id: tenant.id,
    enabled: tenant.enabled,
    auth: authView(tenant),
    cors: tenant.cors,
    creators: tenant.creators,
    token: tenant.token,
    limits: { ...tenant.limits, upstreamMintsPerMinute: tenant.limits.upstreamMintsPerMinute ?? null },
    overrides: override ?? {},
  }
}
