// @ts-self-types="./client.d.ts"
/**
 * The browser client for tiktools-broker, served by the broker at
 * `GET /client.js` (types at `GET /client.d.ts`). One dependency-free ES
 * module: it fetches a scoped tik.tools token from the broker, shares one
 * request among concurrent callers, reuses the token until shortly before it
 * expires, honours `Retry-After`, and keeps a tik.tools LIVE WebSocket open.
 *
 * It stays a single file on purpose: the broker serves it as one URL, so a
 * relative import here would not resolve in the browser.
 *
 * @module
 */

/** How to reach the broker and what to ask it for. */
export interface TokenClientOptions {
  /**
   * The broker's token endpoint. Left out: the `/v1/token` of the broker that
   * served this module (`new URL('/v1/token', import.meta.url)`), which is what
   * a page importing `https://broker.example/client.js` wants. A URL with no
   * path (`'https://broker.example'`) means that origin's `/v1/token`; any other
   * URL is used as it is (absolute, or relative to the page).
   */
  url?: string
  /** Returns the Bearer credential (the app user's JWT); called before every request. Omitted: no `Authorization` header. */
  credentials?: () => string | Promise<string>
  /** `allowed_creators` to ask for; omitted: the broker grants the user's whole allowed list. */
  creators?: string[]
  /** `expire_after` (seconds) to ask for; the broker clamps it to the tenant's maximum. */
  expireAfter?: number
  /** `max_websockets` to ask for; the broker clamps it to the tenant's maximum. */
  maxWebsockets?: number
  /** Reuse a token until this many seconds before `expires_at`, never more than half its lifetime (default 30). */
  renewBeforeSeconds?: number
  /** Longest `Retry-After` (seconds) waited out automatically on 429/503 (default 30); a longer one throws at once. */
  maxRetryWaitSeconds?: number
  /** How many times a 429/503 is retried after waiting (default 2). */
  maxRetries?: number
  /** The tik.tools WebSocket endpoint (default `'wss://api.tik.tools'`). */
  wsUrl?: string
  /** The `fetch` to use (default `globalThis.fetch`). */
  fetch?: typeof fetch
  /** The WebSocket class to use (default `globalThis.WebSocket`; in Node 20, pass the `ws` package's). */
  WebSocket?: typeof WebSocket
  /** The clock in milliseconds since the epoch (default `Date.now`); compared with `expires_at`. */
  now?: () => number
}

/** A token as the broker grants it (the `data` of a 200 answer); frozen, as concurrent callers share it. */
export interface BrokerToken {
  /** The upstream JWT: the `jwtKey` of the WebSocket URL. */
  token: string
  /** Unix seconds at which the token expires. */
  expires_at: number
  /** The token's whole lifetime in seconds. */
  expire_after: number
  /** The creators the token is scoped to; `null` for an unrestricted token. */
  allowed_creators: string[] | null
  max_websockets: number
  /** Whether the broker answered from its cache rather than minting anew. */
  cached: boolean
}

/** One set of rate-limit headers as last seen; `null` where the header was absent or not a number. */
export interface RateLimitInfo {
  limit: number | null
  remaining: number | null
  /** As the header carries it: unix seconds for the upstream's `X-RateLimit-Reset`, seconds to go for the broker's `RateLimit-Reset`. */
  reset: number | null
}

/** Per-call options of {@link TokenClient.getToken}. */
export interface GetTokenOptions {
  /** Gives up waiting (for the answer, or out a `Retry-After`) with a `BrokerClientError` of code `'ABORTED'`. */
  signal?: AbortSignal
  /** Ask the broker even when the held token is still fresh. */
  forceRefresh?: boolean
  /**
   * A token tik.tools refused (its WebSocket closed with 4003). Unless the
   * client already holds a newer token (then served as usual), it forgets the
   * refused one and asks the broker with `"rejected_token": "<it>"` in the
   * body, so that the broker drops it from its cache and mints anew rather than
   * answering the same token. `connect` does this by itself.
   */
  rejectedToken?: string
}

/** Per-call options of {@link TokenClient.connect}. */
export interface ConnectOptions {
  /** Aborting it closes the connection, as `close()` does. */
  signal?: AbortSignal
}

/** A client bound to one broker endpoint and one request shape. */
export interface TokenClient {
  /** A fresh token: the held one while it is fresh, else one request to the broker shared by every concurrent caller. */
  getToken(opts?: GetTokenOptions): Promise<BrokerToken>
  /** Forgets the held token, so that the next `getToken` asks the broker. */
  invalidate(): void
  /** The last rate-limit headers seen: the upstream's `X-RateLimit-*` and the broker's own `RateLimit-*`. */
  readonly quota: { upstream: RateLimitInfo; broker: RateLimitInfo }
  /** Opens the tik.tools LIVE WebSocket for `uniqueId` with a broker token and keeps it open (see {@link createTokenClient}). */
  connect(uniqueId: string, handlers?: LiveHandlers, opts?: ConnectOptions): LiveConnection
}

/** Callbacks of a live connection. */
export interface LiveHandlers {
  /** One JSON frame `{"event": name, "data": {...}}`, e.g. `roomInfo`, `chat`, `like`. */
  onEvent?(event: string, data: unknown): void
  /** Called on every (re)opened socket. */
  onOpen?(): void
  /** The socket closed; `willReconnect` says whether the client opens a new one. */
  onClose?(code: number, reason: string, willReconnect: boolean): void
  /** A token request failed, the socket errored, or a frame was not JSON. A token error that retrying cannot fix (400, 401, 403, 404) ends the connection. */
  onError?(err: BrokerClientError | Error): void
}

/** A live connection that reconnects by itself until closed. */
export interface LiveConnection {
  /** Closes the socket and stops reconnecting. */
  close(): void
  /** The current socket; `null` while fetching a token, waiting to reconnect, or after the end. */
  readonly socket: WebSocket | null
}

/**
 * An error from the broker or on the way to it. `code` is the broker's
 * contract code (`'UNAUTHENTICATED'`, `'RATE_LIMITED'`, ...), or
 * `'NETWORK_ERROR'`, `'ABORTED'`, `'BAD_RESPONSE'`; a `switch` on it narrows.
 */
export class BrokerClientError extends Error {
  /** The contract code, or `'NETWORK_ERROR'` / `'ABORTED'` / `'BAD_RESPONSE'`. */
  readonly code: string
  /** The HTTP status; 0 when there was no answer. */
  readonly status: number
  /** The answer's `Retry-After` in seconds, if it had one. */
  readonly retryAfter: number | null
  /** The underlying error, if any. */
  readonly cause?: unknown

  constructor(code: string, message: string, status = 0, retryAfter: number | null = null, cause?: unknown) {
    super(message)
    this.name = 'BrokerClientError'
    this.code = code
    this.status = status
    this.retryAfter = retryAfter
    if (cause !== undefined) this.cause = cause
  }
}

const DEFAULT_WS_URL = 'wss://api.tik.tools'
const RECONNECT_BASE_MS = 1000
const RECONNECT_MAX_MS = 30_000
/** tik.tools closes with 4003 when the token is bad or expired: fetch a new one. */
const CLOSE_TOKEN_REJECTED = 4003
/** Closes that a later attempt may not see: going away, abnormal, server error, restart, try again, stream ended. */
const CLOSE_TRANSIENT = new Set([1001, 1006, 1011, 1012, 1013, 1014, 4005])

interface Flight {
  promise: Promise<BrokerToken>
  controller: AbortController
  waiters: number
  /** The refused token this request reports (`rejected_token`), if any. */
  rejected: string | undefined
}

/** The `/v1/token` path every broker serves. */
const TOKEN_PATH = '/v1/token'

/**
 * The token endpoint for `createTokenClient`'s `url` option: left out, the
 * serving broker's; a bare origin, that origin's `/v1/token`; else as given.
 */
function tokenEndpoint(url: string | undefined): string {
  if (url === undefined) {
    let here: URL | undefined
    try {
      here = new URL(TOKEN_PATH, import.meta.url)
    } catch {
      // No base to resolve against: a classic-script bundle (no import.meta.url), a blob: or data: module.
    }
    if (here === undefined || (here.protocol !== 'http:' && here.protocol !== 'https:')) {
      throw new TypeError('createTokenClient: options.url is required when this module was not loaded from a broker (GET /client.js)')
    }
    return here.href
  }
  if (typeof url !== 'string' || url === '') throw new TypeError('createTokenClient: options.url must be a non-empty string')
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return url // relative: fetch resolves it against the page
  }
  if ((parsed.protocol === 'http:' || parsed.protocol === 'https:') && parsed.pathname === '/' && parsed.search === '' && parsed.hash === '') {
    return new URL(TOKEN_PATH, parsed).href
  }
  return url
}

/**
 * Creates a client for one broker token endpoint: by default the broker that
 * served this module (see {@link TokenClientOptions.url}).
 *
 * `connect` reconnects by itself: after a 4003 close (bad or expired token) at
 * once with a fresh token, asking the broker with `rejected_token` so that it
 * never answers the refused token again; after 1001, 1006, 1011, 1012, 1013, 1014 or 4005
 * with exponential backoff (1 s, 2 s, 4 s ... capped at 30 s, jittered). Any
 * other close (4000 bad request, 4004 creator not allowed, ...) and `close()`
 * end it.
 *
 * @example
 * ```js
 * import { createTokenClient } from 'https://broker.example/client.js'
 *
 * // No url: the /v1/token of the broker this module came from.
 * const client = createTokenClient({
 *   credentials: () => auth.getAccessToken(),
 *   creators: ['streamer1'],
 * })
 * const live = client.connect('streamer1', {
 *   onEvent: (event, data) => console.log(event, data),
 *   onError: (err) => console.warn(err.code ?? err.message),
 * })
 * // later: live.close()
 * ```
 */
export function createTokenClient(options: TokenClientOptions = {}): TokenClient {
  const endpoint = tokenEndpoint(options.url)
  const now = options.now ?? Date.now
  const doFetch: typeof fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init))
  const renewBefore = Math.max(0, options.renewBeforeSeconds ?? 30)
  const maxRetryWait = options.maxRetryWaitSeconds ?? 30
  const maxRetries = options.maxRetries ?? 2
  const requestFields = {
    allowed_creators: options.creators,
    expire_after: options.expireAfter,
    max_websockets: options.maxWebsockets,
  }

  let held: BrokerToken | null = null
  let flight: Flight | null = null
  const quota = { upstream: emptyLimit(), broker: emptyLimit() }

  function isFresh(t: BrokerToken): boolean {
    const margin = Math.min(renewBefore, t.expire_after / 2)
    return now() / 1000 < t.expires_at - margin
  }

  function recordQuota(headers: Headers): void {
    quota.upstream = readLimit(headers, 'x-ratelimit-') ?? quota.upstream
    quota.broker = readLimit(headers, 'ratelimit-') ?? quota.broker
  }

  async function post(body: string, signal: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' }
    if (options.credentials) headers.authorization = `Bearer ${await options.credentials()}`
    if (signal.aborted) throw abortedError()
    return guard(doFetch(endpoint, { method: 'POST', headers, body, signal }), signal)
  }

  async function mint(rejected: string | undefined, signal: AbortSignal): Promise<BrokerToken> {
    const request = JSON.stringify({ ...requestFields, rejected_token: rejected })
    for (let attempt = 0; ; attempt++) {
      const res = await post(request, signal)
      recordQuota(res.headers)
      const body = await guard(res.text(), signal)
      if (res.ok) return parseToken(body, now())
      const err = errorFrom(res, body, now())
      const waitable = (res.status === 429 || res.status === 503) && err.retryAfter !== null && err.retryAfter <= maxRetryWait
      if (!waitable || attempt >= maxRetries) throw err
      await sleep((err.retryAfter as number) * 1000, signal)
    }
  }

  function startFlight(rejected: string | undefined): Flight {
    const f: Flight = { controller: new AbortController(), waiters: 0, rejected, promise: Promise.resolve(null as never) }
    f.promise = mint(rejected, f.controller.signal).then(
      (token) => {
        // After invalidate() the flight is detached: its answer goes to its waiters only.
        if (flight === f) { held = token; flight = null }
        return token
      },
      (err: unknown) => {
        if (flight === f) flight = null
        throw err
      },
    )
    return f
  }

  /** Waits for the shared request; the last waiter to abort cancels it. */
  function join(f: Flight, signal?: AbortSignal): Promise<BrokerToken> {
    f.waiters++
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        reject(abortedError())
        if (--f.waiters > 0) return
        if (flight === f) flight = null
        f.controller.abort()
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      f.promise.then(
        (token) => { signal?.removeEventListener('abort', onAbort); resolve(token) },
        (err: unknown) => { signal?.removeEventListener('abort', onAbort); reject(err) },
      )
    })
  }

  const client: TokenClient = {
    getToken({ signal, forceRefresh = false, rejectedToken }: GetTokenOptions = {}) {
      if (signal?.aborted) return Promise.reject(abortedError())
      // A refused token is never served again; the rejection of a token older than the held one changes nothing.
      const rejected = rejectedToken !== undefined && (held === null || held.token === rejectedToken) ? rejectedToken : undefined
      if (rejected !== undefined) held = null
      if (!forceRefresh && held && isFresh(held)) return Promise.resolve(held)
      // A request already in flight may be answered with the refused token: report it in a request of its own.
      if (flight === null || (rejected !== undefined && flight.rejected !== rejected)) flight = startFlight(rejected)
      return join(flight, signal)
    },
    invalidate() {
      held = null
      flight = null
    },
    get quota() {
      return { upstream: { ...quota.upstream }, broker: { ...quota.broker } }
    },
    connect(uniqueId, handlers = {}, opts = {}) {
      const WS = options.WebSocket ?? globalThis.WebSocket
      if (typeof WS !== 'function') throw new TypeError('connect: no WebSocket here; pass options.WebSocket')
      return openLive({
        client,
        WS,
        url: (token) => liveUrl(options.wsUrl ?? DEFAULT_WS_URL, uniqueId, token),
        handlers,
        signal: opts.signal,
      })
    },
  }
  return client
}

interface LiveParams {
  client: TokenClient
  WS: typeof WebSocket
  url(token: string): string
  handlers: LiveHandlers
  signal: AbortSignal | undefined
}

/** Runs one live connection: token, socket, frames, and the reconnect policy. */
function openLive({ client, WS, url, handlers, signal }: LiveParams): LiveConnection {
  let socket: WebSocket | null = null
  /** The token tik.tools last refused (4003), reported with every token request until a new one comes. */
  let rejected: string | undefined
  let ended = false
  let attempt = 0
  /** 4003 closes since frames last flowed: the first asks for a new token at once, whatever failed before it. */
  let rejections = 0
  let timer: ReturnType<typeof setTimeout> | null = null
  const lifetime = new AbortController()

  function end(): void {
    ended = true
    if (timer !== null) clearTimeout(timer)
    timer = null
    lifetime.abort()
    signal?.removeEventListener('abort', close)
  }

  function close(): void {
    if (ended) return
    end()
    // The close event still reaches onClose, with willReconnect false.
    socket?.close(1000)
  }

  function retryLater(delayMs: number): void {
    attempt++
    timer = setTimeout(() => { timer = null; void open() }, delayMs)
  }

  async function open(): Promise<void> {
    let token: BrokerToken
    try {
      token = await client.getToken({ signal: lifetime.signal, rejectedToken: rejected })
    } catch (err) {
      if (ended) return
      if (isTransient(err)) retryLater(Math.max(backoff(attempt), (err.retryAfter ?? 0) * 1000))
      else end()
      handlers.onError?.(asError(err))
      return
    }
    if (ended) return
    rejected = undefined
    let ws: WebSocket
    try {
      ws = new WS(url(token.token))
    } catch (err) {
      end()
      handlers.onError?.(asError(err))
      return
    }
    socket = ws
    ws.addEventListener('open', () => { if (socket === ws && !ended) handlers.onOpen?.() })
    ws.addEventListener('error', () => { if (socket === ws && !ended) handlers.onError?.(new Error('WebSocket error')) })
    ws.addEventListener('message', (ev: MessageEvent) => {
      if (socket !== ws || ended) return
      // Frames flow: the connection works, so the next failure starts the backoff over, and a 4003 is a first again.
      attempt = 0
      rejections = 0
      dispatch(ev.data)
    })
    ws.addEventListener('close', (ev: CloseEvent) => {
      if (socket !== ws) return
      socket = null
      closed(ev.code, ev.reason, token.token)
    })
  }

  function closed(code: number, reason: string, token: string): void {
    if (ended) { handlers.onClose?.(code, reason, false); return }
    if (code === CLOSE_TOKEN_REJECTED) {
      rejected = token
      // The first rejection retries at once, even after transient failures (a fresh token is what was missing);
      // repeated ones without a frame between (the broker handing out the same token) back off.
      rejections++
      retryLater(rejections === 1 ? 0 : backoff(rejections - 1))
    } else if (CLOSE_TRANSIENT.has(code)) {
      retryLater(backoff(attempt))
    } else {
      end()
    }
    handlers.onClose?.(code, reason, !ended)
  }

  function dispatch(data: unknown): void {
    if (typeof data !== 'string') return // tik.tools speaks JSON text frames only
    let frame: unknown
    try {
      frame = JSON.parse(data)
    } catch {
      handlers.onError?.(new BrokerClientError('BAD_RESPONSE', 'A WebSocket frame was not JSON'))
      return
    }
    if (isRecord(frame) && typeof frame.event === 'string') handlers.onEvent?.(frame.event, frame.data)
  }

  if (signal?.aborted) end()
  else {
    signal?.addEventListener('abort', close, { once: true })
    void open()
  }
  return { close, get socket() { return socket } }
}

/** Errors a later attempt may not see: no answer, 408, 429, 5xx. */
function isTransient(err: unknown): err is BrokerClientError {
  if (!(err instanceof BrokerClientError)) return false
  return err.code === 'NETWORK_ERROR' || err.status === 408 || err.status === 429 || err.status >= 500
}

/** 1 s, 2 s, 4 s ... capped at 30 s; each between half and all of that, so that many clients spread out. */
function backoff(attempt: number): number {
  const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** Math.min(attempt, 16))
  return ceiling / 2 + Math.random() * (ceiling / 2)
}

function liveUrl(base: string, uniqueId: string, token: string): string {
  const sep = base.includes('?') ? '&' : '?'
  return `${base}${sep}uniqueId=${encodeURIComponent(uniqueId)}&jwtKey=${encodeURIComponent(token)}`
}

function parseToken(text: string, nowMs: number): BrokerToken {
  const body = parseJson(text)
  const data = isRecord(body) && body.status_code === 0 ? body.data : undefined
  if (!isRecord(data) || typeof data.token !== 'string' || data.token === '' || !isNumber(data.expires_at)) {
    throw new BrokerClientError('BAD_RESPONSE', 'The broker answered 200 without a token', 200)
  }
  const creators = Array.isArray(data.allowed_creators) ? data.allowed_creators.filter((c): c is string => typeof c === 'string') : null
  return Object.freeze({
    token: data.token,
    expires_at: data.expires_at,
    expire_after: isNumber(data.expire_after) ? data.expire_after : Math.max(0, data.expires_at - nowMs / 1000),
    allowed_creators: creators && Object.freeze(creators) as string[],
    max_websockets: isNumber(data.max_websockets) ? data.max_websockets : 1,
    cached: data.cached === true,
  })
}

/** The contract's error body `{status_code, code, message}`; anything else is a BAD_RESPONSE with the status. */
function errorFrom(res: Response, text: string, nowMs: number): BrokerClientError {
  const body = parseJson(text)
  const retryAfter = parseRetryAfter(res.headers.get('retry-after'), nowMs)
  if (isRecord(body) && typeof body.code === 'string') {
    const message = typeof body.message === 'string' ? body.message : `The broker answered ${res.status}`
    return new BrokerClientError(body.code, message, res.status, retryAfter)
  }
  return new BrokerClientError('BAD_RESPONSE', `The broker answered ${res.status} without an error body`, res.status, retryAfter)
}

/** `Retry-After` as seconds, from either delay-seconds or an HTTP date. */
function parseRetryAfter(value: string | null, nowMs: number): number | null {
  if (value === null) return null
  const text = value.trim()
  if (/^\d+$/.test(text)) return Number(text)
  const date = Date.parse(text)
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - nowMs) / 1000))
}

function readLimit(headers: Headers, prefix: string): RateLimitInfo | null {
  const limit = intHeader(headers, `${prefix}limit`)
  const remaining = intHeader(headers, `${prefix}remaining`)
  const reset = intHeader(headers, `${prefix}reset`)
  return limit === null && remaining === null && reset === null ? null : { limit, remaining, reset }
}

function intHeader(headers: Headers, name: string): number | null {
  const value = headers.get(name)
  if (value === null || value.trim() === '') return null
  const n = Number(value)
  return Number.isFinite(n) ? n : null
}

function emptyLimit(): RateLimitInfo {
  return { limit: null, remaining: null, reset: null }
}

/** Turns a rejected fetch or body read into ABORTED or NETWORK_ERROR. */
async function guard<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  try {
    return await work
  } catch (err) {
    if (signal.aborted) throw abortedError()
    throw new BrokerClientError('NETWORK_ERROR', 'The broker could not be reached', 0, null, err)
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) { reject(abortedError()); return }
    const onAbort = (): void => { clearTimeout(timer); reject(abortedError()) }
    const timer = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve() }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

function abortedError(): BrokerClientError {
  return new BrokerClientError('ABORTED', 'The token request was aborted')
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err))
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value)
}
