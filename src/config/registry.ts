import { Authenticator } from '../auth/authenticator.js'
import type { JwksCache } from '../auth/jwt-verifier.js'
import type { Tenant } from './tenant-schema.js'

/**
 * The tenants in force and the authenticator built from them. A reload or an
 * admin change swaps both at once; requests already running keep what they had.
 */
export class TenantRegistry {
  #tenants = new Map<string, Tenant>()
  #authenticator: Authenticator
  readonly #jwks: JwksCache = new Map()
  readonly #jwksTimeoutMs: number
  #origins = new Set<string>()

  constructor(tenants: readonly Tenant[], options: { jwksTimeoutMs?: number } = {}) {
    this.#jwksTimeoutMs = options.jwksTimeoutMs ?? 5000
    this.#authenticator = this.#install(tenants)
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

  /** Every tenant's browser origins: a preflight carries no credential, so it is answered for all of them. */
  get origins(): ReadonlySet<string> {
    return this.#origins
  }

  /** Puts a new set of tenants in force. Throws (keeping the old set) when a key cannot be used. */
  replace(tenants: readonly Tenant[]): void {
    this.#authenticator = this.#install(tenants)
  }

  #install(tenants: readonly Tenant[]): Authenticator {
    const authenticator = new Authenticator(tenants, this.#jwks, this.#jwksTimeoutMs)
    this.#tenants = new Map(tenants.map((t) => [t.id, t]))
    this.#origins = new Set(tenants.flatMap((t) => t.cors.origins))
    return authenticator
  }
}
