import { createRemoteJWKSet, errors, type JWTVerifyGetKey } from 'jose'

/** Where discovery logs a change of state (never per request). */
export interface DiscoveryLog {
  warn(fields: object, message: string): void
  info(fields: object, message: string): void
}

/** Timings of OpenID Connect discovery; the defaults suit a hosted identity provider. */
export interface DiscoveryOptions {
  /** Bound of each fetch (discovery document and key set). Default 5000 ms. */
  timeoutMs?: number
  /** Age after which the document and key set are fetched again, in the background. Default 10 min. */
  refreshMs?: number
  /** A token with an unknown `kid` refetches the key set at most this often. Default 30 s. */
  keyMissCooldownMs?: number
  /** Longest wait between attempts while the provider cannot be reached (doubling from 1 s). Default 30 s. */
  maxRetryMs?: number
  now?: () => number
  log?: DiscoveryLog
}

/** Largest discovery document read; real ones are a few KiB. */
const MAX_DOCUMENT_BYTES = 256 * 1024

/**
 * The issuer's keys cannot be had right now (provider unreachable, timed out,
 * or its document unusable): not the caller's fault, so a 503 with `Retry-After`.
 */
export class DiscoveryUnavailableError extends Error {
  readonly retryAfterSeconds: number
  constructor(message: string, retryAfterMs: number, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'DiscoveryUnavailableError'
    this.retryAfterSeconds = Math.max(1, Math.ceil(retryAfterMs / 1000))
  }
}

/** `{issuer}/.well-known/openid-configuration`, a trailing `/` of the issuer dropped first (OIDC Discovery §4). */
export function discoveryUrl(issuer: string): string {
  return `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`
}

type RemoteKeys = ReturnType<typeof createRemoteJWKSet>

interface Discovered {
  jwksUri: string
  keys: RemoteKeys
  /** When the document and keys were last fetched (or a refresh last began). */
  checkedAt: number
  /** When the key set was last fetched because of an unknown `kid`. */
  keyMissAt: number
}

async function readCapped(response: Response): Promise<string> {
  const declared = Number(response.headers.get('content-length') ?? 0)
  if (declared > MAX_DOCUMENT_BYTES) throw new Error(`document larger than ${MAX_DOCUMENT_BYTES} bytes`)
  const reader = response.body?.getReader()
  if (reader === undefined) return ''
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > MAX_DOCUMENT_BYTES) {
      await reader.cancel()
      throw new Error(`document larger than ${MAX_DOCUMENT_BYTES} bytes`)
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks).toString('utf8')
}

/**
 * One issuer's keys, found through OpenID Connect Discovery: the document at
 * {@link discoveryUrl} must name exactly the configured `issuer`, and its
 * `jwks_uri` is the key set. Both are cached and refreshed in the background
 * (a request never waits for a refresh once they are known; a failed refresh
 * keeps the last good ones). Until the first success, callers get a
 * {@link DiscoveryUnavailableError} and the next attempt waits for a backoff.
 * No timer runs: the work happens on the requests that need it.
 */
export class OidcDiscovery {
  readonly issuer: string
  readonly #timeoutMs: number
  readonly #refreshMs: number
  readonly #keyMissCooldownMs: number
  readonly #maxRetryMs: number
  readonly #now: () => number
  readonly #log: DiscoveryLog | undefined
  #current: Discovered | undefined
  #fetching: Promise<Discovered> | undefined
  #failures = 0
  #retryAt = 0

  constructor(issuer: string, options: DiscoveryOptions = {}) {
    this.issuer = issuer
    this.#timeoutMs = options.timeoutMs ?? 5000
    this.#refreshMs = options.refreshMs ?? 600_000
    this.#keyMissCooldownMs = options.keyMissCooldownMs ?? 30_000
    this.#maxRetryMs = options.maxRetryMs ?? 30_000
    this.#now = options.now ?? Date.now
    this.#log = options.log
  }

  /** A jose key resolver for `jwtVerify`. */
  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    const discovered = await this.#discovered()
    try {
      return await discovered.keys(header, token)
    } catch (err) {
      // A rotated key: fetch the key set once more, at most once per cooldown, so unknown kids cannot make us hammer the provider.
      const now = this.#now()
      if (!(err instanceof errors.JWKSNoMatchingKey) || now - discovered.keyMissAt < this.#keyMissCooldownMs) throw err
      discovered.keyMissAt = now
      await discovered.keys.reload()
      return discovered.keys(header, token)
    }
  }

  /** Resolves once no fetch is in flight (a background refresh included); never rejects. */
  async idle(): Promise<void> {
    await this.#fetching?.catch(() => undefined)
  }

  async #discovered(): Promise<Discovered> {
    const now = this.#now()
    const current = this.#current
    if (current !== undefined) {
      if (now - current.checkedAt >= this.#refreshMs && now >= this.#retryAt && this.#fetching === undefined) {
        current.checkedAt = now
        this.#fetch().catch(() => undefined) // in the background; a failure keeps the current keys and is logged
      }
      return current
    }
    if (this.#fetching !== undefined) return this.#fetching
    if (now < this.#retryAt) {
      throw new DiscoveryUnavailableError(`OpenID Connect discovery for ${this.issuer} failed; next attempt pending`, this.#retryAt - now)
    }
    return this.#fetch()
  }

  /** One attempt at the document and its key set, shared by everyone who asks meanwhile. */
  #fetch(): Promise<Discovered> {
    this.#fetching ??= this.#load().then(
      (discovered) => {
        if (this.#failures > 0) this.#log?.info({ issuer: this.issuer }, 'OpenID Connect discovery succeeded again')
        this.#failures = 0
        this.#retryAt = 0
        this.#current = discovered
        return discovered
      },
      (err: Error) => {
        this.#failures += 1
        const waitMs = Math.min(1000 * 2 ** (this.#failures - 1), this.#maxRetryMs)
        this.#retryAt = this.#now() + waitMs
        if (this.#failures === 1) {
          const still = this.#current !== undefined ? '; the last good keys stay in use' : ''
          this.#log?.warn({ issuer: this.issuer, reason: err.message }, `OpenID Connect discovery failed${still}; retrying with backoff`)
        }
        throw new DiscoveryUnavailableError(`OpenID Connect discovery for ${this.issuer} failed`, waitMs, { cause: err })
      },
    ).finally(() => {
      this.#fetching = undefined
    })
    return this.#fetching
  }

  async #load(): Promise<Discovered> {
    const jwksUri = await this.#readDocument()
    const previous = this.#current
    // The same key set URL keeps its keys object (and what it knows); a new one starts afresh.
    const keys =
      previous?.jwksUri === jwksUri
        ? previous.keys
        : createRemoteJWKSet(new URL(jwksUri), { timeoutDuration: this.#timeoutMs, cooldownDuration: Infinity, cacheMaxAge: Infinity })
    await keys.reload()
    // The keys were just fetched: an unknown kid right now would not find anything newer.
    return { jwksUri, keys, checkedAt: this.#now(), keyMissAt: this.#now() }
  }

  /** Fetches and checks the discovery document; answers its `jwks_uri`. */
  async #readDocument(): Promise<string> {
    const response = await fetch(discoveryUrl(this.issuer), {
      headers: { accept: 'application/json' },
      redirect: 'error',
      signal: AbortSignal.timeout(this.#timeoutMs),
    })
    if (response.status !== 200) {
      await response.body?.cancel()
      throw new Error(`discovery document answered HTTP ${response.status}`)
    }
    let doc: unknown
    try {
      doc = JSON.parse(await readCapped(response))
    } catch (err) {
      if (err instanceof SyntaxError) throw new Error('discovery document is not JSON')
      throw err
    }
    if (doc === null || typeof doc !== 'object') throw new Error('discovery document is not a JSON object')
    const { issuer, jwks_uri: jwksUri } = doc as Record<string, unknown>
    if (issuer !== this.issuer) throw new Error(`discovery document names issuer ${JSON.stringify(issuer)}, not the configured one`)
    if (typeof jwksUri !== 'string' || !isKeySetUrl(jwksUri, this.issuer)) {
      throw new Error('discovery document has no usable jwks_uri')
    }
    return jwksUri
  }
}

/** An https key set URL (http only for an http issuer, as in a local test provider). */
function isKeySetUrl(url: string, issuer: string): boolean {
  try {
    const protocol = new URL(url).protocol
    return protocol === 'https:' || (protocol === 'http:' && new URL(issuer).protocol === 'http:')
  } catch {
    return false
  }
}
