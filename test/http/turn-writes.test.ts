import { once } from 'node:events'
import { connect } from 'node:net'
import Fastify from 'fastify'
import { pino } from 'pino'
import t from 'tap'
import { sendAtTurnEnd } from '../../src/http/turn-writes.js'

const turnEnd = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

t.test('answers handed over in one turn go out together at its end, in order, each with its own payload', async (t) => {
  const hook = sendAtTurnEnd(pino({ level: 'silent' }))
  const sent: unknown[] = []
  const done = (err: Error | null, payload?: unknown) => sent.push(err ?? payload)
  hook({} as never, {} as never, 'a', done)
  hook({} as never, {} as never, 'b', done)
  await Promise.resolve()
  process.nextTick(() => hook({} as never, {} as never, 'c', done))
  await new Promise((resolve) => process.nextTick(resolve))
  t.same(sent, [], 'nothing is sent before the turn ends')
  await turnEnd()
  t.same(sent, ['a', 'b', 'c'])
  hook({} as never, {} as never, 'd', done)
  await turnEnd()
  t.same(sent, ['a', 'b', 'c', 'd'], 'a later turn has its own flush')
})

t.test('one answer that fails to go out does not hold back the others of its turn', async (t) => {
  const lines: string[] = []
  const log = pino({ level: 'error' }, { write: (line: string) => void lines.push(line) })
  const hook = sendAtTurnEnd(log)
  const sent: unknown[] = []
  hook({} as never, {} as never, 'x', () => {
    throw new Error('socket gone')
  })
  hook({} as never, {} as never, 'y', (_err, payload) => void sent.push(payload))
  await turnEnd()
  t.same(sent, ['y'])
  t.equal(lines.length, 1)
  t.match(JSON.parse(lines[0] as string), { level: 50, msg: 'sending an answer failed', err: { message: 'socket gone' } })
})

t.test('over real sockets: requests read in one turn are answered together, and a lone request at once', async (t) => {
  const app = Fastify()
  let heldPastSend = 0
  app.post('/x', { onSend: sendAtTurnEnd(app.log) }, (request, reply) => {
    // Fastify sends the returned value at once; without the hook the answer is written before this tick.
    process.nextTick(() => {
      if (!reply.raw.headersSent) heldPastSend += 1
    })
    return { n: (request.body as { n: number }).n }
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const { port } = app.server.address() as { port: number }
  const ask = async (n: number): Promise<{ status: number; body: string }> => {
    const socket = connect(port, '127.0.0.1')
    await once(socket, 'connect')
    const body = JSON.stringify({ n })
    socket.end(`POST /x HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`)
    let text = ''
    for await (const chunk of socket) text += String(chunk)
    return { status: Number(text.split(' ')[1]), body: text.slice(text.indexOf('\r\n\r\n') + 4) }
  }
  const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => ask(i)))
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
  t.equal((await ask(99)).status, 200)
  t.ok(performance.now() - started < 1000, 'a lone request is answered at the end of its own turn')
})
