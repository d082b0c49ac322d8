import type { TenantPatch } from '../config/tenant-patch.js'

/**
 * Where operators' run-time tenant patches live so every replica applies
 * them: this process's memory, or Redis. `version` changes on every save,
 * so replicas poll one small value.
 */
export interface OverrideStore {
  load(): Promise<Map<string, TenantPatch>>
  save(tenantId: string, patch: TenantPatch): Promise<void>
  version(): Promise<string>
  close(): Promise<void>
}

/** {@link OverrideStore} for one process. */
export class MemoryOverrideStore implements OverrideStore {
  readonly #patches = new Map<string, TenantPatch>()
  #version = 0

  async load(): Promise<Map<string, TenantPatch>> {
    return new Map(this.#patches)
  }

  async save(tenantId: string, patch: TenantPatch): Promise<void> {
    this.#patches.set(tenantId, patch)
    this.#version += 1
  }

  async version(): Promise<string> {
    return String(this.#version)
  }

  async close(): Promise<void> {}
}
