import { spawn } from 'node:child_process'
import { once } from 'node:events'
import t from 'tap'
import { TurnBufferedDestination } from '../src/logger.js'

t.test('what one turn logs leaves in one write, at the end of the turn', async (t) => {
  const writes: string[] = []
  const out = new TurnBufferedDestination({ write: (text: string) => void writes.push(text) }, { intervalMs: 0 })
  out.write('a\n')
  out.write('b\n')
  t.same(writes, [], 'nothing written during the turn')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(writes, ['a\nb\n'], 'one write for both lines')
  out.write('c\n')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(writes, ['a\nb\n', 'c\n'], 'a quiet turn writes at once')
  out.write('x'.repeat(70 * 1024))
  t.equal(writes.length, 3, 'a large backlog is written without waiting for the turn to end')
})

t.test('lines logged within the write interval of the last write wait for it, then leave together', async (t) => {
  const writes: string[] = []
  let clock = 1000
  // The interval is read on the injected clock; the timer that waits for it is a real one (here ~990 ms).
  const out = new TurnBufferedDestination({ write: (text: string) => void writes.push(text) }, { intervalMs: 1000, now: () => clock })
  const turnEnd = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
  out.write('first\n')
  await turnEnd()
  t.same(writes, ['first\n'], 'the first line after a pause leaves at the end of its turn')
  clock += 10
  const logged = performance.now()
  out.write('second\n')
  await turnEnd()
  out.write('third\n')
  await turnEnd()
  t.same(writes, ['first\n'], 'lines within the interval are not written at the end of their turns')
  while (writes.length === 1 && performance.now() - logged < 10_000) await new Promise((resolve) => setTimeout(resolve, 10))
  t.same(writes, ['first\n', 'second\nthird\n'], 'once the interval is up, in one write, in order')
  t.ok(performance.now() - logged >= 900, 'not before the interval was up')
  clock += 5000
  out.write('after a pause\n')
  await turnEnd()
  t.same(writes.at(-1), 'after a pause\n', 'after a pause of the interval or more: at the end of the turn again')
})

t.test('a backlog or a flush while a write waits for the interval: nothing lost, nothing out of order, nothing written twice', async (t) => {
  const writes: string[] = []
  let clock = 0
  const out = new TurnBufferedDestination({ write: (text: string) => void writes.push(text) }, { intervalMs: 50, now: () => clock })
  out.write('a\n')
  await new Promise((resolve) => setImmediate(resolve))
  clock += 1
  out.write('b\n')
  const big = 'x'.repeat(70 * 1024)
  out.write(big)
  t.same(writes, ['a\n', `b\n${big}`], 'a large backlog is written at once, with the line that was waiting')
  out.write('c\n')
  out.flush()
  t.same(writes.at(-1), 'c\n', 'flush writes what is pending at once')
  await new Promise((resolve) => setTimeout(resolve, 150))
  t.equal(writes.length, 3, 'the waiting timer then finds nothing to write')
  clock += 1000
  out.write('d\n')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(writes.at(-1), 'd\n', 'and later lines are written as before')
})

t.test('the write interval is a whole number of ms within a timer\'s range', async (t) => {
  const out = { write: () => {} }
  for (const intervalMs of [Number.NaN, Number.POSITIVE_INFINITY, -1, 1.5, 2 ** 31]) {
    t.throws(() => new TurnBufferedDestination(out, { intervalMs }), RangeError, String(intervalMs))
  }
  t.doesNotThrow(() => new TurnBufferedDestination(out, { intervalMs: 0 }))
})

t.test('pending lines are written when the process exits, a crash included, and do not keep it alive', async (t) => {
  const logger = new URL('../src/logger.ts', import.meta.url).href
  // 'last words' is logged within the write interval of the line before it: on standard output (10 ms) most likely
  // waiting on the timer, on a destination of its own with a 60 s interval certainly. The timer must not keep the
  // process alive, and the exit writes the line.
  const destinations = {
    'standard output': 'undefined',
    'a destination of its own': "new TurnBufferedDestination((await import('pino')).pino.destination({ dest: 1, sync: true }), { intervalMs: 60_000 })",
  }
  for (const [where, destination] of Object.entries(destinations)) {
    for (const [how, end] of [
      ['a crash', "throw new Error('boom')"],
      ['an unhandled rejection', "void Promise.reject(new Error('boom'))"],
      ['process.exit', 'process.exit(3)'],
      ['a natural end', ''],
    ] as const) {
      const script = [
        `const { createLogger, TurnBufferedDestination } = await import(${JSON.stringify(logger)})`,
        `const log = createLogger('info', ${destination})`,
        "log.info('first words')",
        'await new Promise((r) => setImmediate(r))',
        'await new Promise((r) => setImmediate(r))',
        "log.info('last words')",
        end,
      ].join('\n')
      const started = performance.now()
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      let stdout = ''
      child.stdout.on('data', (chunk: Buffer) => (stdout += String(chunk)))
      await once(child, 'exit')
      t.match(stdout, /"msg":"first words"[^]*"msg":"last words"/, `${where}, ${how}: the line made it out`)
      t.ok(performance.now() - started < 30_000, `${where}, ${how}: the process did not wait for the interval`)
    }
  }
})
