import { z } from 'zod'
import { ConfigError, formatIssues } from './errors.js'
import { mergePatch } from './merge-patch.js'
import { tenantSchema, type Tenant } from './tenant-schema.js'

const positiveInt = z.number().int().positive()
const rangePatch = z
  .strictObject({ default: z.number().int().positive().nullable(), max: z.number().int().positive().nullable() })
  .partial()
  .nullable()

/**
 * What an operator may change at run time (a JSON merge patch): the switch,
 * the limits, and the token lifetime and socket ranges. Never auth, CORS or creators.
 */
export const tenantPatchSchema = z
  .strictObject({
    enabled: z.boolean().nullable(),
    limits: z
      .strictObject({
        perSubjectPerMinute: positiveInt.nullable(),
        perTenantPerMinute: positiveInt.nullable(),
        upstreamMintsPerMinute: positiveInt.nullable(),
      })
      .partial()
      .nullable(),
    token: z.strictObject({ expireAfter: rangePatch, maxWebsockets: rangePatch }).partial().nullable(),
  })
  .partial()

export type TenantPatch = z.output<typeof tenantPatchSchema>

/** Validates a PATCH body; throws a ConfigError naming the field. */
export function parseTenantPatch(body: unknown): TenantPatch {
  const result = tenantPatchSchema.safeParse(body)
  if (!result.success) throw new ConfigError(formatIssues(result.error))
  return result.data
}

/** Lowering a max without naming a default takes the default down with it, as in the file. */
function withFollowingDefaults(base: Tenant, patch: TenantPatch): TenantPatch {
  const token = patch.token
  if (token == null) return patch
  const follow = (range: { default?: number | null; max?: number | null } | null | undefined, current: { default: number }) =>
    range != null && typeof range.max === 'number' && range.default === undefined && current.default > range.max
      ? { ...range, default: range.max }
      : range
  return {
    ...patch,
    token: {
      ...token,
      ...(token.expireAfter !== undefined && { expireAfter: follow(token.expireAfter, base.token.expireAfter) }),
      ...(token.maxWebsockets !== undefined && { maxWebsockets: follow(token.maxWebsockets, base.token.maxWebsockets) }),
    },
  }
}

/** A tenant as input again (its id left out), so a patch can be merged and the whole re-validated. */
function asInput(tenant: Tenant): Record<string, unknown> {
  const { id: _id, ...settings } = tenant
  return settings
}

/**
 * The tenant with an operator's patch applied, validated like the file
 * (`tenants.<id>.<field>: …` on failure).
 */
export function applyPatch(base: Tenant, patch: TenantPatch | undefined): Tenant {
  if (patch === undefined || Object.keys(patch).length === 0) return base
  const result = tenantSchema.safeParse(mergePatch(asInput(base), withFollowingDefaults(base, patch)))
  if (!result.success) throw new ConfigError(formatIssues(result.error, ['tenants', base.id]))
  return { id: base.id, ...result.data }
}
