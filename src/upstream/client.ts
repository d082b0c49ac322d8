import { EventEmitter } from 'node:events'
import { errors, Pool, type Dispatcher } from 'undici'
import { readQuotaHeaders, readRetryAfter, type QuotaObservation } from './rate-limit-headers.js'

/** The body tik.tools takes at `POST /authentication/jwt`; the broker always sends every field it means. */
export interface MintRequest {
  expire_after: number
  max_websockets: number
  /** Omitted only for a token without creator restriction. */
  allowed_creators?: string[]
}

/** What one upstream mint came to, already classified for the contract's error mapping. */
export type MintOutcome =
  | { ok: true; token: string; quota: QuotaObservation | undefined; status: number; latencyMs: number; sentAt: number; receivedAt: number }
  | {
      ok: false
      kind: 'rate_limited' | 'error' | 'unavailable'
      /** HTTP status, or 'timeout' / 'network' when no answer came. */
      status: number | 'timeout' | 'network'
      reason: string
      quota: QuotaObservation | undefined
      /** `Retry-After` of a 429, in ms. */
      retryAfterMs: number | undefined
      latencyMs: number
      /** Epoch ms on the broker's clock: when the request left, when its answer (or failure) came. */
      sentAt: number
      receivedAt: number
    }

export interface UpstreamClientOptions {
  url: string
  apiKey: string
  timeoutMs: number
  now?: () => number
}

/** Answers larger than this are not tik.tools speaking; they are not read further. */
const MAX_ANSWER_BYTES = 64 * 1024

/**
 * The answer's body as text, or undefined when it is larger than {@link MAX_ANSWER_BYTES}
 * (the rest is not read: the body is destroyed). Rejects when the body fails (the call's
 * deadline, a reset). Listeners rather than `for await`: an answer is one or two chunks,
 * and the async iterator cost more than the rest of reading it.
 */
function readCapped(body: Dispatcher.ResponseData['body']): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    body.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size <= MAX_ANSWER_BYTES) chunks.push(chunk)
      else {
        body.destroy()
        resolve(undefined)
      }
    })
    body.on('end', () => resolve(chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks).toString('utf8')))
    body.on('error', reject)
  })
}

function tokenOf(text: string | undefined): string | undefined {
  if (text === undefined) return undefined
  try {
    const json = JSON.parse(text) as { status_code?: unknown; data?: { token?: unknown } }
    const token = json?.data?.token
    return json.status_code === 0 && typeof token === 'string' && token.length > 0 && token.length < 16_384 ? token : undefined
  } catch {
    return undefined
  }
}

/**
 * The tik.tools client: one keep-alive connection pool to the upstream's origin, one
 * deadline over each whole call (a wait for a free connection, connect, headers and
 * body: `timeoutMs`; a call still waiting at its deadline is never sent), and never
 * an error or log that carries the API key (it travels only in the query string of
 * the request itself).
 *
 * The pool is asked for a path, not a URL: undici's `request(url)` parses the URL and
 * finds the origin's pool on every call. The deadline is one timer and an
 * `EventEmitter` signal (undici's `signal` takes either), cleared when the answer has
 * been read: `AbortSignal.timeout` made a timer, an `EventTarget` and a weak reference
 * per call. Together ~20 µs of each miss's own time (Node 20, undici 7).
 */
export class UpstreamClient {
  readonly #path: string
  readonly #timeoutMs: number
  readonly #now: () => number
  readonly #pool: Pool

  constructor(options: UpstreamClientOptions) {
    // UPSTREAM_URL is an origin, or an origin and a path prefix (config: no trailing slash).
    const url = new URL(options.url)
    this.#path = `${url.pathname.replace(/\/+$/, '')}/authentication/jwt?apiKey=${encodeURIComponent(options.apiKey)}`
    this.#timeoutMs = options.timeoutMs
    this.#now = options.now ?? Date.now
    this.#pool = new Pool(url.origin, {
      keepAliveTimeout: 30_000,
      connections: 32,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      connect: { timeout: options.timeoutMs },
    })
  }

  /** Asks tik.tools for a token; never throws, the outcome says what happened. */
  async mint(body: MintRequest): Promise<MintOutcome> {
    const started = performance.now()
    const sentAt = this.#now()
    const latency = (): number => performance.now() - started
    const fail = (
      kind: 'rate_limited' | 'error' | 'unavailable',
      status: number | 'timeout' | 'network',
      reason: string,
      quota?: QuotaObservation,
      retryAfterMs?: number,
    ): MintOutcome => ({ ok: false, kind, status, reason, quota, retryAfterMs, latencyMs: latency(), sentAt, receivedAt: this.#now() })

    // undici's signal aborts a call that has a connection; one still queued for a connection is only marked (it is
    // never sent), and its promise would settle when a connection frees: `passed` settles it at the deadline itself.
    const deadline = new EventEmitter()
    let expire!: (err: Error) => void
    const passed = new Promise<never>((_resolve, reject) => (expire = reject))
    const timer = setTimeout(() => {
      deadline.emit('abort')
      expire(new errors.RequestAbortedError('deadline passed'))
    }, this.#timeoutMs).unref()
    let answer: Dispatcher.ResponseData
    try {
      const call = this.#pool.request({
        path: this.#path,
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify(body),
        signal: deadline,
      })
      answer = await Promise.race([call, passed])
    } catch (err) {
      clearTimeout(timer)
      // The deadline aborts (RequestAbortedError, 'AbortError'); undici's own timeouts are *TimeoutError.
      const name = (err as Error).name
      const timedOut = name === 'AbortError' || /Timeout/.test(name)
      return fail('unavailable', timedOut ? 'timeout' : 'network', timedOut ? 'timed out' : 'unreachable')
    }
    const quota = readQuotaHeaders(answer.headers, this.#now())
    let text: string | undefined
    try {
      text = await readCapped(answer.body)
    } catch {
      return fail('unavailable', 'timeout', 'answer not completed', quota)
    } finally {
      clearTimeout(timer)
    }
    const status = answer.statusCode
    if (status === 429) return fail('rate_limited', status, 'upstream quota exceeded', quota, readRetryAfter(answer.headers, this.#now()))
    if (status !== 200) return fail('error', status, `upstream answered ${status}`, quota)
    const token = tokenOf(text)
    if (token === undefined) return fail('error', status, 'upstream answer has no token', quota)
    return { ok: true, token, quota, status, latencyMs: latency(), sentAt, receivedAt: this.#now() }
  }

  async close(): Promise<void> {
    await this.#pool.close()
  }
}
