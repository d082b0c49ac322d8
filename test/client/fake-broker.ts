import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { queue, type Queue } from './queue.js'

/** One canned answer; `raw` sends text as is instead of JSON. */
export interface Answer {
  status?: number
  headers?: Record<string, string>
  body?: unknown
  raw?: string
}

/** The part of a tap test that the helpers use. */
export interface HasTeardown {
  teardown(fn: () => unknown): void
}

export interface BrokerCall {
  method: string
  /** The request path (and query). */
  path: string
  headers: IncomingHttpHeaders
  body: string
}

export interface FakeBroker {
  url: string
  calls: BrokerCall[]
  /** Each call, in order, as it arrives (before it is answered). */
  received: Queue<BrokerCall>
  /** Queues answers for the next calls; once they run out, each call gets a fresh token `tok-<n>`. */
  answer(...answers: Answer[]): void
}

/** The upstream's quota (X-RateLimit-*) and the broker's own (RateLimit-*), as the broker sends them. */
export const QUOTA_HEADERS = {
  'x-ratelimit-limit': '30',
  'x-ratelimit-remaining': '29',
  'x-ratelimit-reset': '1764100000',
  'ratelimit-limit': '60',
  'ratelimit-remaining': '59',
  'ratelimit-reset': '42',
}

export function errorAnswer(status: number, code: string, headers: Record<string, string> = {}): Answer {
  return { status, headers, body: { status_code: status, code, message: `${code} from the fake broker` } }
}

/**
 * A stand-in for the broker's `POST /v1/token` on 127.0.0.1:0 that answers
 * in the contract's shape; closed at teardown.
 */
export async function startFakeBroker(
  t: HasTeardown,
  opts: { nowSeconds?: () => number; lifetime?: number } = {},
): Promise<FakeBroker> {
  const nowSeconds = opts.nowSeconds ?? (() => Math.floor(Date.now() / 1000))
  const lifetime = opts.lifetime ?? 600
  const calls: BrokerCall[] = []
  const received = queue<BrokerCall>()
  const pending: Answer[] = []
  let minted = 0

  const success = (): Answer => ({
    headers: QUOTA_HEADERS,
    body: {
      status_code: 0,
      data: {
        token: `tok-${++minted}`,
        expires_at: nowSeconds() + lifetime,
        expire_after: lifetime,
        allowed_creators: ['streamer1'],
        max_websockets: 1,
        cached: false,
      },
    },
  })

  const server = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => { body += chunk })
    req.on('end', () => {
      const call = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body }
      calls.push(call)
      received.push(call)
      const answer = pending.shift() ?? success()
      res.writeHead(answer.status ?? 200, {
        'content-type': answer.raw === undefined ? 'application/json' : 'text/html',
        ...answer.headers,
      })
      res.end(answer.raw ?? JSON.stringify(answer.body))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  const { port } = server.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}/v1/token`, calls, received, answer: (...a) => { pending.push(...a) } }
}
