import type { TenantPatch } from '../config/tenant-patch.js'

/** A stored patch that was not adopted: its tenant, why, and a fingerprint of the stored value (never the value). */
export interface RejectedOverride {
  tenantId: string
  reason: string
  fingerprint: string
}

/** What a store holds: the patches that passed its checks, and the ones that did not. */
export interface LoadedOverrides {
  patches: Map<string, TenantPatch>
  rejected: RejectedOverride[]
}

/**
 * Where operators' run-time tenant patches live so every replica applies
 * them: this process's memory, or Redis. `version` changes on every save,
 * so replicas poll one small value.
 */
export interface OverrideStore {
  /** Every tenant's patch, each one authenticated and validated (what fails is reported, not returned). */
  load(): Promise<LoadedOverrides>
  /**
   * Saves a tenant's patch if the store is still at `expectedVersion`
   * (compare-and-set, so two operators never silently undo each other);
   * answers the new version, or null when someone saved first.
   */
  save(tenantId: string, patch: TenantPatch, expectedVersion: string): Promise<string | null>
  /** The current version; '0' before any save. */
  version(): Promise<string>
  close(): Promise<void>
}

/** {@link OverrideStore} for one process. */
export class MemoryOverrideStore implements OverrideStore {
  readonly #patches = new Map<string, TenantPatch>()
  #version = 0

  async load(): Promise<LoadedOverrides> {
    return { patches: new Map(this.#patches), rejected: [] }
  }

  async save(tenantId: string, patch: TenantPatch, expectedVersion: string): Promise<string | null> {
    if (expectedVersion !== String(this.#version)) return null
    this.#patches.set(tenantId, patch)
    this.#version += 1
    return String(this.#version)
  }

  async version(): Promise<string> {
    return String(this.#version)
  }

  async close(): Promise<void> {}
}
