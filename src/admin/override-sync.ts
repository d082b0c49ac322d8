import type { FastifyBaseLogger } from 'fastify'
import type { TenantRegistry } from '../config/registry.js'
import type { TenantPatch } from '../config/tenant-patch.js'
import { BrokerError } from '../errors.js'
import type { OverrideStore, RejectedOverride } from './overrides.js'

/**
 * Keeps this replica's tenants in step with the operators' patches in the
 * shared store: one small `version` read a tick, a full load only on change.
 * Ticks and this replica's own patches run one at a time, so a tick can
 * never put back what a patch just changed.
 */
export class OverrideSync {
  readonly #registry: TenantRegistry
  readonly #store: OverrideStore
  readonly #log: FastifyBaseLogger
  #seen: string | undefined
  #queue: Promise<unknown> = Promise.resolve()
  #timer: NodeJS.Timeout | undefined
  #stopped = false
  /** Fingerprints of the stored values already reported as refused, so each is logged once, not every tick. */
  #reported = new Set<string>()

  constructor(registry: TenantRegistry, store: OverrideStore, log: FastifyBaseLogger) {
    this.#registry = registry
    this.#store = store
    this.#log = log
  }

  /** Runs `work` alone: no tick or other patch in between. */
  #exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work, work)
    this.#queue = run.catch(() => undefined)
    return run
  }

  /** Applies the store's patches if they changed since the last look; never throws. */
  tick(): Promise<void> {
    return this.#exclusive(() => this.#pull())
  }

  async #pull(): Promise<void> {
    try {
      const version = await this.#store.version()
      if (version === this.#seen) return
      const { patches, rejected } = await this.#store.load()
      this.#report(rejected)
      // A refused value keeps the override already in force: garbage written over a patch must not lift it.
      const adopted = new Map(patches)
      for (const r of rejected) {
        const kept = this.#registry.override(r.tenantId)
        if (kept !== undefined) adopted.set(r.tenantId, kept)
      }
      const skipped = this.#registry.adoptOverrides(adopted)
      if (skipped.length > 0) this.#log.warn({ tenants: skipped }, 'shared tenant overrides no longer fit; kept the previous ones')
      this.#seen = version
    } catch (err) {
      this.#log.warn({ err: { message: (err as Error).message } }, 'tenant overrides unavailable; keeping the current ones')
    }
  }

  #report(rejected: readonly RejectedOverride[]): void {
    const current = new Set(rejected.map((r) => r.fingerprint))
    for (const r of rejected) {
      if (this.#reported.has(r.fingerprint)) continue
      // The tenant id as stored may be anything; pino escapes it, and it is cut short.
      this.#log.warn({ tenant: r.tenantId.slice(0, 64), reason: r.reason }, 'ignored a shared tenant override that is not authentic or not valid')
    }
    this.#reported = current
  }

  /**
   * Merges an operator's patch on top of the latest shared overrides, shares
   * it (compare-and-set, retried on a concurrent save), then puts it in force
   * here. Throws a ConfigError naming the field, or a 503 when it cannot be shared.
   */
  patch(tenantId: string, patch: TenantPatch) {
    return this.#exclusive(async () => {
      for (let attempt = 0; attempt < 5; attempt++) {
        await this.#pull()
        const prepared = this.#registry.preparePatch(tenantId, patch)
        if (prepared === undefined) throw new BrokerError('NOT_FOUND', `No tenant ${tenantId}.`)
        const version = await this.#store.save(tenantId, prepared.override, this.#seen ?? '0')
        if (version === null) continue
        this.#registry.commitPatch(tenantId, prepared)
        this.#seen = version
        return prepared.tenant
      }
      throw new BrokerError('UPSTREAM_UNAVAILABLE', 'Tenant overrides keep changing under this request; retry.', {
        headers: { 'retry-after': 1 },
      })
    })
  }

  /** Polls every `intervalMs` (well inside the contract's 5 s), each tick after the last one ended. */
  start(intervalMs = 1000): void {
    const next = (): void => {
      if (this.#stopped) return
      this.#timer = setTimeout(() => void this.tick().finally(next), intervalMs)
      this.#timer.unref()
    }
    next()
  }

  stop(): void {
    this.#stopped = true
    clearTimeout(this.#timer)
  }
}
