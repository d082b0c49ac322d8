import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { pino } from 'pino'
import t from 'tap'
import { createAuditLog } from '../../src/audit/audit-log.js'
import { sendAtTurnEnd } from '../../src/http/turn-writes.js'
import { createLogger } from '../../src/logger.js'
import type { Grant } from '../../src/policy/grant.js'

const turnEnd = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
const grant = { tenantId: 'acme', subject: 'user-1', creators: ['a1'], expireAfter: 600, maxWebsockets: 2 } as unknown as Grant

t.test("a mint's audit line is written at the end of its turn, after the turn's answers, subject hashed", async (t) => {
  const events: string[] = []
  const log = createLogger('info', { write: (line: string) => void events.push(line) })
  const audit = createAuditLog(log, { hashKey: 'k'.repeat(32) })
  const hook = sendAtTurnEnd({ log: pino({ level: 'silent' }) })
  // A miss: the mint (and its audit) first, then its answer is handed over.
  audit.mint(grant)
  hook({} as never, { header: () => {}, raw: undefined as never } as never, 'answer', () => events.push('answer sent'))
  t.same(events, [], 'nothing during the turn')
  await turnEnd()
  t.equal(events[0], 'answer sent')
  t.equal(events.length, 2)
  const line = JSON.parse(events[1] as string) as Record<string, unknown>
  t.match(line, { level: 30, channel: 'audit', event: 'token.mint', tenant: 'acme', subject: /^hmac:/, grant: { creators: ['a1'], expireAfter: 600, maxWebsockets: 2 }, msg: 'audit' })
  t.notMatch(events[1], /user-1/)
})

t.test('a process that exits in the turn of a mint still writes its audit line', async (t) => {
  const src = (f: string): string => JSON.stringify(new URL(`../../src/${f}`, import.meta.url).href)
  const script = `
    const { createLogger } = await import(${src('logger.ts')})
    const { createAuditLog } = await import(${src('audit/audit-log.ts')})
    createAuditLog(createLogger('info'), { hashKey: 'k'.repeat(32), subjects: 'plain' })
      .mint({ tenantId: 'acme', subject: 'last-user', creators: null, expireAfter: 60, maxWebsockets: 1 })
    process.exit(0)`
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  let stdout = ''
  child.stdout.on('data', (chunk: Buffer) => (stdout += String(chunk)))
  await once(child, 'exit')
  t.match(stdout, /"event":"token\.mint".*"subject":"last-user"/)
})
