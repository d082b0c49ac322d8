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
  // The interval is read on the injected clock; the timer that waits for it is a real one (here ~190 ms).
  const out = new TurnBufferedDestination({ write: (text: string) => void writes.push(text) }, { intervalMs: 200, now: () => clock })
  const turnEnd = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
  out.write('first\n')
  await turnEnd()
  t.same(writes, ['first\n'], 'the first line after a pause leaves at the end of its turn')
  clock += 10
  out.write('second\n')
  await turnEnd()
  out.write('third\n')
  await turnEnd()
  t.same(writes, ['first\n'], 'lines within the interval are not written at the end of their turns')
  const waited = Date.now()
  while (writes.length === 1 && Date.now() - waited < 5000) await new Promise((resolve) => setTimeout(resolve, 10))
  t.same(writes, ['first\n', 'second\nthird\n'], 'once the interval is up, in one write, in order')
  t.ok(Date.now() - waited >= 100, 'not before the interval was up')
  clock += 1000
  out.write('after a pause\n')
  await turnEnd()
  t.same(writes.at(-1), 'after a pause\n', 'after a pause of the interval or more: at the end of the turn again')
  clock += 1
  out.write('x'.repeat(70 * 1024))
  t.equal(writes.length, 4, 'a large backlog within the interval is written at once')
  out.write('pending\n')
  out.flush()
  t.same(writes.at(-1), 'pending\n', 'flush writes what is pending at once')
})

t.test('pending lines are written when the process exits, a crash included', async (t) => {
  const logger = new URL('../src/logger.ts', import.meta.url).href
  // 'last words' is logged within the write interval of the line before it, so it waits on a timer that must not keep
  // the process alive, and is written by the process's exit.
  for (const [how, end] of [
    ['a crash', "throw new Error('boom')"],
    ['process.exit', 'process.exit(3)'],
    ['a natural end', ''],
  ] as const) {
    const script = `const { createLogger } = await import(${JSON.stringify(logger)}); const log = createLogger('info'); log.info('first words'); await new Promise((r) => setImmediate(r)); await new Promise((r) => setImmediate(r)); log.info('last words'); ${end}`
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += String(chunk)))
    await once(child, 'exit')
    t.match(stdout, /"msg":"first words"[^]*"msg":"last words"/, `${how}: the line made it out`)
  }
})
