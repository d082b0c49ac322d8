import { Agent, request } from 'undici'
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

async function readCapped(body: AsyncIterable<Buffer>): Promise<string | undefined> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    size += chunk.length
    if (size > MAX_ANSWER_BYTES) return undefined
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
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
 * The tik.tools client: one keep-alive connection pool, a timeout on every
 * call, and never an error or log that carries the API key (it travels only
 * in the query string of the request itself).
 */
export class UpstreamClient {
  readonly #endpoint: string
  readonly #timeoutMs: number
  readonly #now: () => number
  readonly #agent: Agent

  constructor(options: UpstreamClientOptions) {
    this.#endpoint = `${options.url}/authentication/jwt?apiKey=${encodeURIComponent(options.apiKey)}`
    this.#timeoutMs = options.timeoutMs
    this.#now = options.now ?? Date.now
    this.#agent = new Agent({
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

    let answer: Awaited<ReturnType<typeof request>>
    try {
      answer = await request(this.#endpoint, {
        method: 'POST',
        dispatcher: this.#agent,
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.#timeoutMs),
      })
    } catch (err) {
      const name = (err as Error).name
      const timedOut = name === 'TimeoutError' || name === 'AbortError' || /Timeout/.test(name)
      return fail('unavailable', timedOut ? 'timeout' : 'network', timedOut ? 'timed out' : 'unreachable')
    }
    const quota = readQuotaHeaders(answer.headers, this.#now())
    let text: string | undefined
    try {
      text = await readCapped(answer.body)
    } catch {
      return fail('unavailable', 'timeout', 'answer not completed', quota)
    }
    const status = answer.statusCode
    if (status === 429) return fail('rate_limited', status, 'upstream quota exceeded', quota, readRetryAfter(answer.headers, this.#now()))
    if (status !== 200) return fail('error', status, `upstream answered ${status}`, quota)
    const token = tokenOf(text)
    if (token === undefined) return fail('error', status, 'upstream answer has no token', quota)
    return { ok: true, token, quota, status, latencyMs: latency(), sentAt, receivedAt: this.#now() }
  }

  async close(): Promise<void> {
    await this.#agent.close()
  }
}
