import { pino } from 'pino'
import t from 'tap'
import { atTurnEnd } from '../../src/http/turn-end.js'
import { sendAtTurnEnd } from '../../src/http/turn-writes.js'
import { TurnBufferedDestination } from '../../src/logger.js'

const turnEnd = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

t.test('answers run before what comes after, whatever order they were queued in, at the end of the turn', async (t) => {
  const ran: string[] = []
  atTurnEnd(() => ran.push('after 1'), 'after')
  atTurnEnd(() => ran.push('answer 1'), 'answers')
  await Promise.resolve()
  atTurnEnd(() => ran.push('after 2'), 'after')
  atTurnEnd(() => ran.push('answer 2'), 'answers')
  t.same(ran, [], 'nothing during the turn')
  await turnEnd()
  t.same(ran, ['answer 1', 'answer 2', 'after 1', 'after 2'])
})

t.test('queued while the bands run: into after during the answers, this pass; anything else, the next turn', async (t) => {
  const ran: string[] = []
  atTurnEnd(() => {
    ran.push('answer')
    atTurnEnd(() => ran.push('after queued by an answer'), 'after')
    atTurnEnd(() => ran.push('answer queued by an answer'), 'answers')
  }, 'answers')
  atTurnEnd(() => {
    ran.push('after')
    atTurnEnd(() => ran.push('after queued by after'), 'after')
  }, 'after')
  await turnEnd()
  t.same(ran, ['answer', 'after', 'after queued by an answer'], 'one pass')
  await turnEnd()
  t.same(ran, ['answer', 'after', 'after queued by an answer', 'answer queued by an answer', 'after queued by after'], 'the rest at the next turn end')
})

t.test('a task that throws stops none of the others, and no error is swallowed', async (t) => {
  const ran: string[] = []
  const listeners = process.listeners('uncaughtException')
  process.removeAllListeners('uncaughtException')
  const errors: string[] = []
  process.on('uncaughtException', (err) => errors.push(err.message))
  t.teardown(() => {
    process.removeAllListeners('uncaughtException')
    for (const l of listeners) process.on('uncaughtException', l)
  })
  atTurnEnd(() => {
    throw new Error('first')
  }, 'answers')
  atTurnEnd(() => ran.push('answer'), 'answers')
  atTurnEnd(() => {
    throw new Error('second')
  }, 'after')
  atTurnEnd(() => ran.push('after'), 'after')
  await turnEnd()
  await turnEnd()
  t.same(ran, ['answer', 'after'])
  t.same(errors, ['first', 'second'], 'each error surfaces, in order')
  atTurnEnd(() => ran.push('next turn'), 'after')
  await turnEnd()
  t.same(ran, ['answer', 'after', 'next turn'], 'later turns still run')
})

t.test("a turn's held answers go out before its log lines are written, even a line logged first", async (t) => {
  const events: string[] = []
  const out = new TurnBufferedDestination({ write: (text: string) => void events.push(`log ${text.trim()}`) })
  const hook = sendAtTurnEnd({ log: pino({ level: 'silent' }) })
  const reply = { header: () => {}, raw: undefined as never }
  // A miss: its audit line is logged before its answer is handed over.
  out.write('audit\n')
  hook({} as never, reply as never, 'answer', (_err, payload) => events.push(`sent ${String(payload)}`))
  await turnEnd()
  t.same(events, ['sent answer', 'log audit'])
})
