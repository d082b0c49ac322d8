import type { FastifyBaseLogger } from 'fastify'
import type { TenantRegistry } from '../config/registry.js'
import type { OverrideStore } from './overrides.js'

/**
 * Keeps this replica's tenants in step with the operators' patches in the
 * shared store: one small `version` read a tick, a full load only on change.
 */
export class OverrideSync {
  readonly #registry: TenantRegistry
  readonly #store: OverrideStore
  readonly #log: FastifyBaseLogger
  #seen: string | undefined
  #timer: NodeJS.Timeout | undefined

  constructor(registry: TenantRegistry, store: OverrideStore, log: FastifyBaseLogger) {
    this.#registry = registry
    this.#store = store
    this.#log = log
  }

  /** Applies the store's patches if they changed since the last look; never throws. */
  async tick(): Promise<void> {
    try {
      const version = await this.#store.version()
      if (version === this.#seen) return
      const overrides = await this.#store.load()
      const skipped = this.#registry.adoptOverrides(overrides)
      if (skipped.length > 0) this.#log.warn({ tenants: skipped }, 'shared tenant overrides no longer fit; kept the previous ones')
      this.#seen = version
    } catch (err) {
      this.#log.warn({ err: { message: (err as Error).message } }, 'tenant overrides unavailable; keeping the current ones')
    }
  }

  /** Marks a version as already applied here (after this replica's own PATCH). */
  async markCurrent(): Promise<void> {
    this.#seen = await this.#store.version().catch(() => this.#seen)
  }

  /** Polls every `intervalMs` (well inside the contract's 5 s). */
  start(intervalMs = 1000): void {
    this.#timer = setInterval(() => void this.tick(), intervalMs)
    this.#timer.unref()
  }

  stop(): void {
    clearInterval(this.#timer)
  }
}
