import { spawn } from 'node:child_process'
import { once } from 'node:events'
import t from 'tap'
import { TurnBufferedDestination } from '../src/logger.js'

t.test('what one turn logs leaves in one write, at the end of the turn', async (t) => {
  const writes: string[] = []
  const out = new TurnBufferedDestination({ write: (text: string) => void writes.push(text) })
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

t.test('pending lines are written when the process exits, a crash included', async (t) => {
  const logger = new URL('../src/logger.ts', import.meta.url).href
  for (const [how, end] of [
    ['a crash', "throw new Error('boom')"],
    ['process.exit', 'process.exit(3)'],
  ] as const) {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', `const { createLogger } = await import(${JSON.stringify(logger)}); createLogger('info').info('last words'); ${end}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += String(chunk)))
    await once(child, 'exit')
    t.match(stdout, /"msg":"last words"/, `${how}: the line made it out`)
  }
})
