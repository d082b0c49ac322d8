import { once } from 'node:events'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Test } from 'tap'

/** What the stand-in answers to one mint: status, headers, and a JSON object or raw text. */
export interface ScriptedAnswer {
  status?: number
  headers?: Record<string, string>
  body?: object | string
}

/** One mint call that reached the stand-in, held until the test answers it. */
export interface PendingMint {
  body: Record<string, unknown>
  answer(a: ScriptedAnswer): void
}

export interface ScriptedUpstream {
  url: string
  /** Calls that reached it so far. */
  readonly calls: number
  /** The next call (already arrived, or the next to arrive). */
  next(): Promise<PendingMint>
  /** From now on every call is answered at once by `fn` (undefined: held for `next()` again). */
  autoAnswer(fn: ((body: Record<string, unknown>, n: number) => ScriptedAnswer) | undefined): void
}

/** An unsigned JWT-shaped token with these claims (the broker reads, never verifies, tik.tools' tokens); `raw` is the payload's JSON text. */
export function fakeToken(claims: Record<string, unknown> | { raw: string }, tag = Math.random().toString(36).slice(2)): string {
  const payload = typeof claims.raw === 'string' ? claims.raw : JSON.stringify({ ...claims, jti: tag })
  return `eyJhbGciOiJIUzI1NiJ9.${Buffer.from(payload).toString('base64url')}.c2ln${tag}`
}

/** A 200 with a token living `lifetime` seconds from `iat` (unix seconds) and the quota headers given. */
export function tokenAnswer(iat: number, lifetime = 600, quota?: { limit: number; remaining: number; reset: number | string }): ScriptedAnswer {
  return {
    status: 200,
    headers: quota === undefined ? {} : quotaHeaders(quota),
    body: { status_code: 0, data: { token: fakeToken({ iat, exp: iat + lifetime }) } },
  }
}

export function quotaHeaders(q: { limit: number; remaining: number; reset: number | string }): Record<string, string> {
  return { 'x-ratelimit-limit': String(q.limit), 'x-ratelimit-remaining': String(q.remaining), 'x-ratelimit-reset': String(q.reset) }
}

/**
 * A tik.tools stand-in on 127.0.0.1:0 whose every answer the test writes:
 * each call waits in a queue until the test answers it, so the order in which
 * answers reach the broker is the test's, not the scheduler's. Closed at teardown.
 */
export async function startScriptedUpstream(t: Test): Promise<ScriptedUpstream> {
  const arrived: PendingMint[] = []
  const waiting: Array<(p: PendingMint) => void> = []
  let auto: ((body: Record<string, unknown>, n: number) => ScriptedAnswer) | undefined
  let calls = 0
  const open = new Set<ServerResponse>()
  const send = (res: ServerResponse, a: ScriptedAnswer): void => {
    open.delete(res)
    const text = typeof a.body === 'string' ? a.body : JSON.stringify(a.body ?? {})
    res.writeHead(a.status ?? 200, { 'content-type': 'application/json', ...a.headers }).end(text)
  }
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    calls += 1
    open.add(res)
    let body: Record<string, unknown> = {}
    try {
      body = JSON.parse(Buffer.concat(chunks).toString() || '{}')
    } catch {
      // the broker always sends JSON; a test would see the 400 it gets
    }
    if (auto !== undefined) return send(res, auto(body, calls))
    const pending: PendingMint = { body, answer: (a) => send(res, a) }
    const w = waiting.shift()
    if (w !== undefined) w(pending)
    else arrived.push(pending)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    for (const res of open) res.destroy()
    server.closeAllConnections()
    await new Promise((r) => server.close(r))
  })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get calls() {
      return calls
    },
    next() {
      const p = arrived.shift()
      return p !== undefined ? Promise.resolve(p) : new Promise((resolve) => waiting.push(resolve))
    },
    autoAnswer(fn) {
      auto = fn
    },
  }
}
