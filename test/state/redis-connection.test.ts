import { Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { createLogger } from '../../src/logger.js'
import { RedisConnection } from '../../src/state/redis-connection.js'
import { startRedisServer, type RedisServer } from '../helpers/redis.js'
import { until } from '../helpers/redis-topologies.js'

const COMMAND_TIMEOUT_MS = 200

async function connect(t: Test): Promise<{ server: RedisServer; connection: RedisConnection; logs: string[] }> {
  const server = await startRedisServer(t)
  const logs: string[] = []
  const log = createLogger('info', new Writable({ write: (chunk, _enc, cb) => (logs.push(String(chunk)), cb()) }))
  const connection = await RedisConnection.open(server.url, log, { commandTimeoutMs: COMMAND_TIMEOUT_MS, probeAfterMs: 100, connectTimeoutMs: 5000 })
  t.teardown(() => connection.close())
  t.equal(connection.available, true)
  t.teardown(() => server.resume())
  return { server, connection, logs }
}

/** A command as the fallback wrappers run it: its failure reported to the connection. */
const command = (c: RedisConnection) => c.client.get('tkb:test:x').catch((err: Error) => (c.noteFailure(err), err))

const redisLines = (logs: string[]) => logs.filter((l) => /redis (unavailable|is not|available again)/.test(l))

t.test('one slow answer (Redis frozen for a moment): local state only until a probe sent at once answers, nothing logged', async (t) => {
  const { server, connection, logs } = await connect(t)
  server.pause()
  const err = await connection.client.get('tkb:test:x').catch((e: Error) => e)
  t.match(err, { message: 'Command timed out' }, 'the command itself timed out')
  // The moment passes just as the command gives up; the probe that the failure sends finds Redis answering.
  server.resume()
  connection.noteFailure(err)
  t.equal(connection.available, false, 'suspect: requests do not wait on a Redis that may be slow')
  const back = await until('available again', async () => connection.available, 5 * COMMAND_TIMEOUT_MS, 1)
  t.pass(`available again after ${back} ms`)
  t.same(redisLines(logs), [], 'nothing logged: there was no outage')
  t.equal(await connection.readiness(), undefined)
})

t.test('a Redis that stays frozen: slow after the confirming probe, logged once; back by itself when it thaws', async (t) => {
  const { server, connection, logs } = await connect(t)
  server.pause()
  await command(connection)
  await until('the probe confirms it', async () => !connection.available, 5 * COMMAND_TIMEOUT_MS, 10)
  t.match(await connection.readiness(), /^redis: unavailable, not answering in time/)
  for (let i = 0; i < 5; i++) await command(connection)
  await sleep(300)
  server.resume()
  await until('available again', async () => connection.available, 3000, 10)
  t.equal(redisLines(logs).length, 2, 'the outage and the recovery, once each')
  t.match(redisLines(logs)[0], /not answering in time/)
  t.match(redisLines(logs)[1], /available again/)
})

t.test('a client that ioredis ends by itself (no more reconnects) is connected again, as often as it takes', async (t) => {
  const server = await startRedisServer(t)
  const logs: string[] = []
  const log = createLogger('info', new Writable({ write: (chunk, _enc, cb) => (logs.push(String(chunk)), cb()) }))
  const connection = await RedisConnection.open(server.url, log, { maxRetryDelayMs: 50, connectTimeoutMs: 5000 })
  t.teardown(() => connection.close())
  for (let i = 0; i < 2; i++) {
    // What the Sentinel race does to it: the client gives up for good, outside close().
    connection.client.disconnect()
    await until('the client ended', async () => connection.client.status === 'end', 1000, 5)
    t.equal(connection.available, false)
    await until('available again', async () => connection.available, 3000, 10)
  }
  t.equal(redisLines(logs).filter((l) => l.includes('available again')).length, 2)
  await connection.close()
  await sleep(200)
  t.equal(connection.client.status, 'end', 'an end asked for by close() stays an end')
})
