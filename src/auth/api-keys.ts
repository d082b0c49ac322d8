import { createHash, timingSafeEqual } from 'node:crypto'

/** The stored form of a broker API key: `sha256:<hex>`. */
export function hashApiKey(key: string): string {
  return `sha256:${createHash('sha256').update(key, 'utf8').digest('hex')}`
}

interface KeyEntry {
  digest: Buffer
  tenantId: string
}

/**
 * Finds the tenant a broker API key belongs to. Every configured hash is
 * compared in constant time, with no early exit, so timing tells nothing.
 */
export class ApiKeyIndex {
  readonly #entries: KeyEntry[]

  constructor(tenants: ReadonlyArray<{ id: string; auth: { apiKeys: readonly string[] } }>) {
    this.#entries = tenants.flatMap((t) =>
      t.auth.apiKeys.map((h) => ({ digest: Buffer.from(h.slice('sha256:'.length), 'hex'), tenantId: t.id })),
    )
  }

  /** The tenant id whose key this is, or undefined. */
  match(key: string): string | undefined {
    if (this.#entries.length === 0) return undefined
    const digest = createHash('sha256').update(key, 'utf8').digest()
    let found: string | undefined
    for (const e of this.#entries) {
      if (timingSafeEqual(digest, e.digest) && found === undefined) found = e.tenantId
    }
    return found
  }
}
