import { Authenticator } from '../auth/authenticator.js'
import { keySetId, type JwksCache, type KeySetOptions } from '../auth/jwt-verifier.js'
import { credentialOverlaps } from './credential-overlap.js'
import { ConfigError } from './errors.js'
import { mergePatch } from './merge-patch.js'
import { applyPatch, tenantPatchSchema, type TenantPatch } from './tenant-patch.js'
import type { Tenant } from './tenant-schema.js'

/**
 * The tenants in force: the file's (or the environment's) tenants with the
 * operators' run-time patches on top, and the authenticator built from them.
 * A reload or a patch swaps them at once; running requests keep what they had.
 */
export class TenantRegistry {
  #base: readonly Tenant[] = []
  #overrides = new Map<string, TenantPatch>()
  #tenants = new Map<string, Tenant>()
  #authenticator!: Authenticator
  readonly #jwks: JwksCache = new Map()
  readonly #keySets: KeySetOptions
  #origins = new Set<string>()

  /** `keySets` tunes remote keys (JWKS and OIDC discovery): fetch timeout, clock, log. */
  constructor(tenants: readonly Tenant[], options: { jwksTimeoutMs?: number; keySets?: KeySetOptions } = {}) {
    this.#keySets = { timeoutMs: options.jwksTimeoutMs ?? 5000, ...options.keySets }
    this.replace(tenants)
  }

  get authenticator(): Authenticator {
    return this.#authenticator
  }

  get(id: string): Tenant | undefined {
    return this.#tenants.get(id)
  }

  all(): Tenant[] {
    return [...this.#tenants.values()]
  }

  /** The operator patch in force for a tenant, if any. */
  override(id: string): TenantPatch | undefined {
    return this.#overrides.get(id)
  }

  /** Every tenant's browser origins: a preflight carries no credential, so it is answered for all of them. */
  get origins(): ReadonlySet<string> {
    return this.#origins
  }

  /**
   * Puts a new set of base tenants in force, operator patches kept on top.
   * Throws a ConfigError (keeping the old set) when a tenant or a key is unusable.
   */
  replace(tenants: readonly Tenant[]): void {
    const overlaps = credentialOverlaps(tenants)
    if (overlaps.length > 0) throw new ConfigError(overlaps.map((o) => `tenants.${o.path.join('.')}: ${o.message}`))
    const effective = tenants.map((t) => this.#withOverride(t))
    let authenticator: Authenticator
    try {
      authenticator = new Authenticator(effective, this.#jwks, this.#keySets)
    } catch (err) {
      throw new ConfigError([`tenants: ${(err as Error).message}`])
    }
    for (const id of this.#jwks.keys()) {
      if (!effective.some((t) => t.auth.jwt !== undefined && keySetId(t.auth.jwt) === id)) this.#jwks.delete(id)
    }
    this.#base = tenants
    this.#authenticator = authenticator
    this.#install(effective)
  }

  /**
   * A base tenant with its operator override applied. Where the two together are invalid (a file that narrows
   * `token.expireAfter.max` below an overriding `default`, say), the ConfigError says that the override is part
   * of it, and which: the field it names may be valid in the file alone.
   */
  #withOverride(base: Tenant): Tenant {
    const patch = this.#overrides.get(base.id)
    try {
      return applyPatch(base, patch)
    } catch (err) {
      if (!(err instanceof ConfigError) || patch === undefined) throw err
      // Said once, after the issues: the override may be long.
      throw new ConfigError([
        ...err.issues,
        `tenants.${base.id}: the file's tenant with the admin override ${JSON.stringify(patch)} applied (change the file, or PATCH the override's fields to null)`,
      ])
    }
  }

  /**
   * The tenant's override with an operator's patch merged in, validated against
   * its base tenant (a ConfigError naming the field when invalid); nothing changes
   * yet. Undefined for an unknown tenant.
   */
  preparePatch(id: string, patch: TenantPatch): { override: TenantPatch; tenant: Tenant } | undefined {
    const base = this.#base.find((t) => t.id === id)
    if (base === undefined) return undefined
    const override = mergePatch(this.#overrides.get(id) ?? {}, patch) as TenantPatch
    return { override, tenant: applyPatch(base, override) }
  }

  /** Puts a prepared override in force. */
  commitPatch(id: string, prepared: { override: TenantPatch; tenant: Tenant }): void {
    this.#overrides.set(id, prepared.override)
    this.#install(this.#base.map((t) => (t.id === id ? prepared.tenant : this.#tenants.get(t.id) ?? t)))
  }

  /** Puts the overrides shared by another replica in force; ones that no longer fit their tenant are skipped. */
  adoptOverrides(overrides: ReadonlyMap<string, TenantPatch>): string[] {
    const skipped: string[] = []
    const next = new Map<string, TenantPatch>()
    const effective = this.#base.map((t) => {
      const patch = overrides.get(t.id)
      if (patch === undefined) return t
      try {
        // Shared patches are data: only what an operator may PATCH is ever applied, whatever the store holds.
        tenantPatchSchema.parse(patch)
        const applied = applyPatch(t, patch)
        next.set(t.id, patch)
        return applied
      } catch {
        skipped.push(t.id)
        const kept = this.#overrides.get(t.id)
        if (kept !== undefined) next.set(t.id, kept)
        return this.#tenants.get(t.id) ?? t
      }
    })
    this.#overrides = next
    this.#install(effective)
    return skipped
  }

  #install(effective: readonly Tenant[]): void {
    this.#tenants = new Map(effective.map((t) => [t.id, t]))
    this.#origins = new Set(effective.flatMap((t) => t.cors.origins))
  }
}
