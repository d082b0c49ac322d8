import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import t, { type Test } from 'tap'
import { UpstreamClient } from '../../src/upstream/client.js'
import { fakeToken } from '../helpers/scripted-upstream.js'

const KEY = 'tt-client-test-key/with+odd&chars=0123'

interface Seen {
  method: string
  url: string
  headers: IncomingMessage['headers']
  body: string
  socket: Socket
}

/** A loopback server whose every answer is `handle`'s; what each request looked like is kept in `seen`. Closed at teardown. */
async function serve(t: Test, handle: (req: IncomingMessage, res: ServerResponse, seen: Seen) => void): Promise<{ url: string; seen: Seen[]; server: Server }> {
  const seen: Seen[] = []
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const s: Seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString(), socket: req.socket }
    seen.push(s)
    handle(req, res, s)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server }
}

function client(t: Test, url: string, timeoutMs = 2000): UpstreamClient {
  const c = new UpstreamClient({ url, apiKey: KEY, timeoutMs })
  t.teardown(() => c.close())
  return c
}

const ok = (res: ServerResponse, token = fakeToken({ iat: 1, exp: 601 })): void => {
  res.writeHead(200, { 'content-type': 'application/json', 'x-ratelimit-limit': '60', 'x-ratelimit-remaining': '59', 'x-ratelimit-reset': '30' }).end(JSON.stringify({ status_code: 0, data: { token } }))
}

t.test('POSTs the grant as JSON to <UPSTREAM_URL>/authentication/jwt with the key in the query, a path prefix kept', async (t) => {
  const up = await serve(t, (_req, res) => ok(res, 'tok-1'))
  const c = client(t, `${up.url}/tiktools/v2`)
  const outcome = await c.mint({ expire_after: 600, max_websockets: 2, allowed_creators: ['a"b', 'c'] })
  t.match(outcome, { ok: true, token: 'tok-1', status: 200, quota: { limit: 60, remaining: 59 } })
  t.equal(up.seen.length, 1)
  const s = up.seen[0] as Seen
  t.equal(s.method, 'POST')
  t.equal(s.url, `/tiktools/v2/authentication/jwt?apiKey=${encodeURIComponent(KEY)}`)
  t.equal(new URL(s.url, 'http://x').searchParams.get('apiKey'), KEY, 'the key arrives intact')
  t.equal(s.headers['content-type'], 'application/json')
  t.strictSame(JSON.parse(s.body), { expire_after: 600, max_websockets: 2, allowed_creators: ['a"b', 'c'] })
})

t.test('sequential calls reuse keep-alive connections', async (t) => {
  const up = await serve(t, (_req, res) => ok(res))
  const c = client(t, up.url)
  for (let i = 0; i < 10; i++) t.equal((await c.mint({ expire_after: 60, max_websockets: 1 })).ok, true)
  // A call made as the previous one's answer ends may find that connection not yet free (undici frees it a tick later): two at most.
  t.ok(new Set(up.seen.map((s) => s.socket)).size <= 2, 'ten calls, one or two connections')
})

t.test('the timeout bounds the whole call: no answer at all, and an answer whose body trickles in', async (t) => {
  const hanging = await serve(t, () => {})
  const started = performance.now()
  const silent = await client(t, hanging.url, 300).mint({ expire_after: 60, max_websockets: 1 })
  const silentMs = performance.now() - started
  t.match(silent, { ok: false, kind: 'unavailable', status: 'timeout', reason: 'timed out' })
  t.ok(silentMs >= 250 && silentMs < 1500, `gave up after ${Math.round(silentMs)} ms`)

  // Headers at once, then a byte every 100 ms: each gap is well within the timeout, the whole is not.
  const trickling = await serve(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.write('{"status_code":0,')
    const timer = setInterval(() => res.write(' '), 100)
    res.on('close', () => clearInterval(timer))
  })
  const began = performance.now()
  const slow = await client(t, trickling.url, 400).mint({ expire_after: 60, max_websockets: 1 })
  const slowMs = performance.now() - began
  t.match(slow, { ok: false, kind: 'unavailable', status: 'timeout' })
  t.ok(slowMs >= 350 && slowMs < 1500, `gave up after ${Math.round(slowMs)} ms, not after the answer ended`)
})

t.test('every deadline timer a call sets is cleared when the call ends, by an answer or a failure', async (t) => {
  const up = await serve(t, (req, res) => (req.url?.includes('fail') === true ? res.destroy() : ok(res)))
  const c = client(t, up.url, 60_000)
  // The client's timers, seen by their delay: wrap the globals it calls for the length of this test.
  const set = globalThis.setTimeout
  const clear = globalThis.clearTimeout
  const pending = new Set<unknown>()
  let made = 0
  globalThis.setTimeout = ((fn: () => void, ms?: number) => {
    const timer = set(fn, ms)
    if (ms === 60_000) {
      made += 1
      pending.add(timer)
    }
    return timer
  }) as typeof setTimeout
  globalThis.clearTimeout = ((timer: Parameters<typeof clearTimeout>[0]) => {
    pending.delete(timer)
    clear(timer)
  }) as typeof clearTimeout
  t.teardown(() => {
    globalThis.setTimeout = set
    globalThis.clearTimeout = clear
  })
  for (let i = 0; i < 10; i++) t.equal((await c.mint({ expire_after: 60, max_websockets: 1 })).ok, true)
  const failing = new UpstreamClient({ url: `${up.url}/fail`, apiKey: KEY, timeoutMs: 60_000 })
  t.teardown(() => failing.close())
  for (let i = 0; i < 5; i++) t.match(await failing.mint({ expire_after: 60, max_websockets: 1 }), { ok: false, kind: 'unavailable' })
  t.equal(made, 15, 'one deadline per call')
  t.equal(pending.size, 0, 'all of them cleared')
})

t.test('calls queued behind a full pool give up at their deadline and never reach the upstream after it', async (t) => {
  const up = await serve(t, () => {})
  const c = client(t, up.url, 400)
  const started = performance.now()
  // The pool has 32 connections: the last 8 of these wait for one.
  const outcomes = await Promise.all(Array.from({ length: 40 }, () => c.mint({ expire_after: 60, max_websockets: 1 }).then((o) => ({ o, ms: performance.now() - started }))))
  for (const { o, ms } of outcomes) {
    t.match(o, { ok: false, kind: 'unavailable', status: 'timeout' })
    t.ok(ms >= 350 && ms < 1500, `settled after ${Math.round(ms)} ms`)
  }
  // What was on the wire at the deadline has arrived by now (loopback; the server shares this process's event loop).
  await new Promise((resolve) => setTimeout(resolve, 100))
  const sent = up.seen.length
  t.ok(sent >= 32 && sent <= 40, `${sent} sent`)
  await new Promise((resolve) => setTimeout(resolve, 400))
  t.equal(up.seen.length, sent, 'none reaches the upstream after its call gave up')
})

t.test('an answer larger than 64 KiB is not read to its end: an error without a token', async (t) => {
  const up = await serve(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ status_code: 0, data: { token: 'x'.repeat(100 * 1024) } }))
  })
  const outcome = await client(t, up.url).mint({ expire_after: 60, max_websockets: 1 })
  t.match(outcome, { ok: false, kind: 'error', status: 200, reason: 'upstream answer has no token' })
})

t.test('a multi-byte token split across chunks comes back whole', async (t) => {
  const token = `eyJ.${'ü€'.repeat(700)}.sig`
  const up = await serve(t, (_req, res) => {
    const bytes = Buffer.from(JSON.stringify({ status_code: 0, data: { token } }))
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(bytes.length) })
    // Cut inside a character, flushed apart.
    res.write(bytes.subarray(0, 101))
    setTimeout(() => res.end(bytes.subarray(101)), 20)
  })
  t.match(await client(t, up.url).mint({ expire_after: 60, max_websockets: 1 }), { ok: true, token })
})

t.test('429 carries its Retry-After; other statuses are errors; a refused connection is a network failure; the key is in no outcome', async (t) => {
  let status = 429
  const up = await serve(t, (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json', 'retry-after': '7' }).end('{"status_code":429}')
  })
  const c = client(t, up.url)
  const limited = await c.mint({ expire_after: 60, max_websockets: 1 })
  t.match(limited, { ok: false, kind: 'rate_limited', status: 429, retryAfterMs: 7000 })
  status = 503
  t.match(await c.mint({ expire_after: 60, max_websockets: 1 }), { ok: false, kind: 'error', status: 503 })
  const port = (up.server.address() as AddressInfo).port
  up.server.closeAllConnections()
  await new Promise((resolve) => up.server.close(resolve))
  const refused = await client(t, `http://127.0.0.1:${port}`).mint({ expire_after: 60, max_websockets: 1 })
  t.match(refused, { ok: false, kind: 'unavailable', status: 'network', reason: 'unreachable' })
  for (const o of [limited, refused]) t.notMatch(JSON.stringify(o), /tt-client-test-key|with%2Bodd/, 'no key')
})
