import { once } from 'node:events'
import { connect } from 'node:net'
import Fastify from 'fastify'
import { pino } from 'pino'
import t from 'tap'
import { sendAtTurnEnd } from '../../src/http/turn-writes.js'

const turnEnd = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/** A reply as the hook uses it: the headers set on it. */
function fakeReply(): { header: (k: string, v: string) => void; headers: Record<string, string>; raw: never } {
  const headers: Record<string, string> = {}
  return { headers, header: (k, v) => void (headers[k] = v), raw: undefined as never }
}

t.test('answers handed over in one turn go out together at its end, in order, each with its own payload', async (t) => {
  const hook = sendAtTurnEnd({ log: pino({ level: 'silent' }) })
  const sent: unknown[] = []
  const done = (err: Error | null, payload?: unknown) => sent.push(err ?? payload)
  hook({} as never, fakeReply() as never, 'a', done)
  hook({} as never, fakeReply() as never, 'b', done)
  await Promise.resolve()
  process.nextTick(() => hook({} as never, fakeReply() as never, 'c', done))
  await new Promise((resolve) => process.nextTick(resolve))
  t.same(sent, [], 'nothing is sent before the turn ends')
  await turnEnd()
  t.same(sent, ['a', 'b', 'c'])
  hook({} as never, fakeReply() as never, 'd', done)
  await turnEnd()
  t.same(sent, ['a', 'b', 'c', 'd'], 'a later turn has its own flush')
})

t.test('an answer that cannot be written becomes the contract 500 over real sockets, and the others of its turn still go', async (t) => {
  const lines: string[] = []
  const app = Fastify({ logger: false })
  const log = pino({ level: 'error' }, { write: (line: string) => void lines.push(line) })
  app.post('/x', { onSend: sendAtTurnEnd({ log }) }, (request, reply) => {
    const { n } = request.body as { n: number }
    // Node refuses a header value with a line break when the head is written: Fastify's send throws then.
    if (n === 0) reply.header('x-bad', 'a\nb')
    return { n }
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const { port } = app.server.address() as { port: number }
  const answers = await Promise.all([0, 1].map((n) => ask(port, n)))
  t.equal(answers[0]?.status, 500)
  t.same(JSON.parse(answers[0]?.body ?? ''), { status_code: 500, code: 'INTERNAL', message: 'Internal error.' })
  t.match(answers[0]?.head ?? '', /content-type: application\/json; charset=utf-8/i)
  t.notMatch(answers[0]?.head ?? '', /x-bad/i)
  t.equal(answers[1]?.status, 200)
  t.same(JSON.parse(answers[1]?.body ?? ''), { n: 1 })
  t.equal(lines.length, 1)
  t.match(JSON.parse(lines[0] as string), { level: 50, msg: 'sending an answer failed; answered 500 instead' })
})

/** One POST /x on a connection of its own: status, head and body. */
async function ask(port: number, n: number): Promise<{ status: number; head: string; body: string }> {
  const socket = connect(port, '127.0.0.1')
  await once(socket, 'connect')
  const body = JSON.stringify({ n })
  socket.end(`POST /x HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`)
  let text = ''
  for await (const chunk of socket) text += String(chunk)
  const end = text.indexOf('\r\n\r\n')
  return { status: Number(text.split(' ')[1]), head: text.slice(0, end), body: text.slice(end + 4) }
}

t.test('over real sockets: requests read in one turn are answered together, and a lone request at once', async (t) => {
  const app = Fastify()
  let heldPastSend = 0
  app.post('/x', { onSend: sendAtTurnEnd({ log: app.log }) }, (request, reply) => {
    // Fastify sends the returned value at once; without the hook the answer is written before this tick.
    process.nextTick(() => {
      if (!reply.raw.headersSent) heldPastSend += 1
    })
    return { n: (request.body as { n: number }).n }
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const { port } = app.server.address() as { port: number }
  const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => ask(port, i)))
  t.same(
    answers.map((a) => a.status),
    Array(20).fill(200),
  )
  t.same(
    answers.map((a) => JSON.parse(a.body).n),
    Array.from({ length: 20 }, (_, i) => i),
  )
  t.equal(heldPastSend, 20, 'no answer was written before the end of its turn')
  const started = performance.now()
  t.equal((await ask(port, 99)).status, 200)
  t.ok(performance.now() - started < 1000, 'a lone request is answered at the end of its own turn')
})
