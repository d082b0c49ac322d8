import type { Credential } from '../auth/authenticator.js'
import { claimAt } from '../auth/claims.js'
import type { Tenant } from '../config/tenant-schema.js'
import { BrokerError } from '../errors.js'
import { creatorsFromClaim } from './creators.js'
import type { TokenRequest } from './token-request.js'

/** What one caller gets: the exact upstream token parameters, and whose it is. */
export interface Grant {
  tenantId: string
  subject: string
  /** Sorted, de-duplicated creators; null for a token without creator restriction. */
  creators: string[] | null
  expireAfter: number
  maxWebsockets: number
}

/** The subject a request acts for: the user's own, or the one an API-key backend vouches for. */
export function subjectOf(credential: Credential, request: TokenRequest): string {
  if (credential.mode === 'jwt') {
    if (request.subject !== undefined) throw new BrokerError('BAD_REQUEST', 'subject: only allowed with a broker API key')
    return credential.subject
  }
  if (request.subject === undefined) throw new BrokerError('BAD_REQUEST', 'subject: required with a broker API key')
  return request.subject
}

/** Each tenant's creator list as a set, built once per tenant object (a reload or patch makes a new one). */
const creatorSets = new WeakMap<Tenant, Set<string>>()

function tenantCreators(tenant: Tenant): Set<string> | null {
  if (tenant.creators.allowed === '*') return null
  let set = creatorSets.get(tenant)
  if (set === undefined) creatorSets.set(tenant, (set = new Set(tenant.creators.allowed)))
  return set
}

/** The creators this caller may have: the tenant's list ∩ the user's claim (fail closed); null means any. */
function allowedCreators(tenant: Tenant, credential: Credential): Set<string> | null {
  const tenantList = tenantCreators(tenant)
  const claimName = tenant.auth.jwt?.creatorsClaim
  if (credential.mode !== 'jwt' || claimName === undefined) return tenantList
  const claimed = creatorsFromClaim(claimAt(credential.claims, claimName))
  return tenantList === null ? claimed : new Set([...claimed].filter((c) => tenantList.has(c)))
}

/**
 * Decides what a caller may get: creators checked against policy,
 * `expire_after` and `max_websockets` clamped to the tenant's maxima.
 */
export function grantFor(tenant: Tenant, credential: Credential, subject: string, request: TokenRequest): Grant {
  const allowed = allowedCreators(tenant, credential)
  let creators: string[] | null
  if (request.allowed_creators !== undefined) {
    const wanted = [...new Set(request.allowed_creators)].sort()
    const refused = allowed === null ? [] : wanted.filter((c) => !allowed.has(c))
    if (refused.length > 0) {
      throw new BrokerError('CREATOR_NOT_ALLOWED', `creator ${refused.map((c) => `"${c}"`).join(', ')} is not allowed`)
    }
    creators = wanted
  } else if (allowed === null) {
    if (!tenant.creators.allowUnrestricted) {
      throw new BrokerError('CREATORS_REQUIRED', 'allowed_creators is required: this tenant allows any creator but no unrestricted token')
    }
    creators = null
  } else {
    if (allowed.size === 0) throw new BrokerError('CREATOR_NOT_ALLOWED', 'no creator is allowed for this caller')
    creators = [...allowed].sort()
  }
  const { expireAfter, maxWebsockets } = tenant.token
  return {
    tenantId: tenant.id,
    subject,
    creators,
    expireAfter: Math.min(request.expire_after ?? expireAfter.default, expireAfter.max),
    maxWebsockets: Math.min(request.max_websockets ?? maxWebsockets.default, maxWebsockets.max),
  }
}
