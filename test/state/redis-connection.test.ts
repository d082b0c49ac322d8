import { spawnSync } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer, connect as connectTcp, type Socket } from 'node:net'
import { Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { createLogger } from '../../src/logger.js'
import { RECONNECT_GRACE_MS, RedisConnection, type RedisConnectionOptions } from '../../src/state/redis-connection.js'
import { startRedisServer, type RedisServer } from '../helpers/redis.js'
import { spawnRedis, until } from '../helpers/redis-topologies.js'

const COMMAND_TIMEOUT_MS = 200

/** A connection to `url` whose log lines are kept in `logs`; closed at teardown. */
async function open(t: Test, url: string, options: RedisConnectionOptions): Promise<{ connection: RedisConnection; logs: string[] }> {
  const logs: string[] = []
  const log = createLogger('info', new Writable({ write: (chunk, _enc, cb) => (logs.push(String(chunk)), cb()) }))
  const connection = await RedisConnection.open(url, log, { connectTimeoutMs: 5000, ...options })
  t.teardown(() => connection.close())
  return { connection, logs }
}

async function connect(t: Test, commandTimeoutMs = COMMAND_TIMEOUT_MS): Promise<{ server: RedisServer; connection: RedisConnection; logs: string[] }> {
  const server = await startRedisServer(t)
  const { connection, logs } = await open(t, server.url, { commandTimeoutMs, probeAfterMs: 100 })
  t.equal(connection.available, true)
  t.teardown(() => server.resume())
  return { server, connection, logs }
}

/** A command as the fallback wrappers run it: its failure reported to the connection. */
const command = (c: RedisConnection) => c.client.get('tkb:test:x').catch((err: Error) => (c.noteFailure(err), err))

const redisLines = (logs: string[]) => logs.filter((l) => /redis (unavailable|is not|available again|is another server)/.test(l))

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

for (const [name, refuse, allow] of [
  ['OOM (maxmemory reached under noeviction)', ['maxmemory', '1'], ['maxmemory', '0']],
  ['MISCONF (an RDB save failed, stop-writes-on-bgsave-error)', ['dir', '/proc'], undefined],
] as const) {
  t.test(`a primary refusing writes, ${name}: an outage with its reason, logged once; back when a write goes through`, async (t) => {
    // Protected configs on, so that the test may point `dir` where no file can be made.
    const server = await spawnRedis(t, ['--enable-protected-configs', 'yes'])
    const { connection, logs } = await open(t, `redis://127.0.0.1:${server.port}`, { commandTimeoutMs: COMMAND_TIMEOUT_MS, probeAfterMs: 100 })
    const admin = server.connect()
    t.teardown(() => void admin.disconnect())
    await admin.config('SET', 'maxmemory-policy', 'noeviction')
    if (allow === undefined) {
      // A save that cannot write its file fails; with stop-writes-on-bgsave-error (the default) writes are refused.
      // (Redis refuses writes after a failed save only where save points are set.)
      await admin.config('SET', 'save', '3600 1')
      await admin.config('SET', 'stop-writes-on-bgsave-error', 'yes')
      await admin.config('SET', ...refuse)
      await admin.bgsave().catch(() => undefined)
      await until('the save failed', async () => /rdb_last_bgsave_status:err/.test(await admin.info('persistence')), 5000, 20)
    } else {
      await admin.config('SET', ...refuse)
    }
    const write = (c: RedisConnection) => c.client.set('tkb:test:x', '1').catch((err: Error) => (c.noteFailure(err), err))
    const err = await write(connection)
    t.match(err, { message: /^(OOM|MISCONF)/ }, 'the write was refused')
    await until('an outage', async () => !connection.available && (await connection.readiness()) !== undefined, 5000, 10)
    t.match(await connection.readiness(), /^redis: unavailable, writes refused \[.*\]: (OOM|MISCONF)/)
    for (let i = 0; i < 3; i++) await write(connection)
    const lines = redisLines(logs)
    t.equal(lines.length, 1, 'logged once')
    t.match(lines[0], /it refuses writes \(MISCONF or OOM\)/)
    if (allow === undefined) await admin.config('SET', 'stop-writes-on-bgsave-error', 'no')
    else await admin.config('SET', ...allow)
    await until('available again', async () => connection.available, 5000, 10)
    t.match(redisLines(logs)[1], /available again/)
  })
}

t.test('decided(): at once when not suspect; when suspect, as soon as the probe answers either way, or at its bound', async (t) => {
  const { server, connection } = await connect(t)
  let started = performance.now()
  await connection.decided(5000)
  t.ok(performance.now() - started < 50, 'up: at once')
  connection.noteFailure(new Error('Command timed out'))
  t.equal(connection.available, false, 'suspect')
  started = performance.now()
  await connection.decided(5000)
  t.equal(connection.available, true, 'the probe found Redis answering')
  t.ok(performance.now() - started < 1000, `resolved when it did (${Math.round(performance.now() - started)} ms), not at the bound`)
  server.pause()
  connection.noteFailure(new Error('Command timed out'))
  started = performance.now()
  await connection.decided(5000)
  t.equal(connection.available, false, 'the probe timed out: Redis is slow, not suspect')
  t.ok(performance.now() - started < 5 * COMMAND_TIMEOUT_MS, 'decided when the probe gave up, not at the bound')
  server.resume()
  await until('available again', async () => connection.available, 5000, 10)
  connection.noteFailure(new Error('Command timed out'))
  server.pause()
  started = performance.now()
  await connection.decided(50)
  t.ok(performance.now() - started < COMMAND_TIMEOUT_MS, 'a bound shorter than the probe: resolved at the bound')
  server.resume()
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
  const { connection, logs } = await open(t, server.url, { maxRetryDelayMs: 50 })
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

/** Closes the broker's own connection from the server side (CLIENT KILL by its name), as a proxy, an idle timeout or a Sentinel's +switch-master would. */
async function dropConnection(t: Test, server: RedisServer): Promise<void> {
  const admin = new Redis(server.url)
  try {
    t.ok(Number(await admin.call('CLIENT', 'KILL', 'ID', await brokerClientId(admin))) === 1, 'the broker connection was dropped')
  } finally {
    admin.disconnect()
  }
}

async function brokerClientId(admin: Redis): Promise<string> {
  const list = String(await admin.call('CLIENT', 'LIST'))
  const line = list.split('\n').find((l) => / name=tiktools-broker /.test(l))
  return /\bid=(\d+)/.exec(line ?? '')?.[1] ?? 'none'
}

t.test('a dropped connection that reconnects at once (CLIENT KILL, +switch-master): local state for the moment, no outage logged', async (t) => {
  const { server, connection, logs } = await connect(t)
  // Traffic as the fallback wrappers send it: a command may find the stream ended before ioredis emits its close.
  let stop = false
  const failures = new Map<string, number>()
  const sent: Array<Promise<unknown>> = []
  const traffic = (async () => {
    // One command every turn of the event loop, none awaited: some are always on their way when the connection drops.
    while (!stop) {
      sent.push(command(connection).then((r) => r instanceof Error && failures.set(r.message, (failures.get(r.message) ?? 0) + 1)))
      await new Promise((resolve) => setImmediate(resolve))
    }
    await Promise.all(sent)
  })()
  for (let i = 0; i < 10; i++) {
    let availableAtClose: boolean | undefined
    connection.client.once('close', () => (availableAtClose = connection.available))
    await dropConnection(t, server)
    await until('the close was seen', async () => availableAtClose !== undefined, 1000, 1)
    t.equal(availableAtClose, false, 'requests use local state from the moment the connection closed')
    const back = await until('available again', async () => connection.available, 3000, 1)
    t.pass(`available again ${back} ms after the drop`)
  }
  stop = true
  await traffic
  t.comment('commands refused meanwhile:', JSON.stringify(Object.fromEntries(failures)))
  await sleep(1500)
  t.same(redisLines(logs), [], 'nothing logged: Redis never stopped taking writes')
  t.equal(await connection.readiness(), undefined)
})

t.test('a command that finds the stream ended before ioredis saw the close: the reconnect decides, nothing logged', async (t) => {
  const { connection, logs } = await connect(t)
  for (let i = 0; i < 3; i++) {
    // Our side half-closed: ioredis still says ready, and no write can go out until the close and the reconnect.
    ;(connection.client as Redis).stream.end()
    t.equal(connection.client.status, 'ready')
    const err = await command(connection)
    t.match(err, { message: /^Stream isn't writeable/ })
    t.equal(connection.available, false, 'suspect: local state at once')
    await until('available again', async () => connection.available, 3000, 1)
  }
  await sleep(1500)
  t.same(redisLines(logs), [], 'nothing logged: the probe the failure sent could not go out either, and the reconnect decided')
})

t.test('a dropped connection whose reconnect fails: the outage is logged once, at once', async (t) => {
  const { server, connection, logs } = await connect(t)
  const stopped = Date.now()
  await server.kill()
  await until('the outage logged', async () => redisLines(logs).length > 0, 3000, 1)
  t.ok(Date.now() - stopped < 1000, `logged ${Date.now() - stopped} ms after Redis stopped`)
  t.match(await connection.readiness(), /^redis: unavailable, not connected/)
  await sleep(500)
  await server.start()
  await until('available again', async () => connection.available, 5000, 10)
  await until('the new server noted', async () => redisLines(logs).length === 3, 1000, 5)
  t.equal(redisLines(logs).length, 3, 'the outage, the recovery and the new server, once each')
  t.match(redisLines(logs)[0], /redis unavailable/)
  t.match(redisLines(logs)[1], /available again/)
  t.match(redisLines(logs)[2], /another server process than before \(a restart or a failover\)/)
})

t.test('a dropped connection whose reconnect hangs (Redis frozen right after): logged as an outage after the grace', async (t) => {
  // Commands bounded well beyond the grace: the reconnect's ready check hangs, and only the grace can end the wait.
  const { server, connection, logs } = await connect(t, 3 * RECONNECT_GRACE_MS)
  const admin = new Redis(server.url)
  const id = await brokerClientId(admin)
  // One round trip: the kill, then the freeze, before the client's reconnect (50 ms later) reaches the server.
  await admin.multi().call('CLIENT', 'KILL', 'ID', id).exec()
  server.pause()
  admin.disconnect()
  const dropped = Date.now()
  await until('the outage logged', async () => redisLines(logs).length > 0, 5000, 5)
  const after = Date.now() - dropped
  t.ok(after >= RECONNECT_GRACE_MS - 50 && after < 2 * RECONNECT_GRACE_MS, `logged ${after} ms after the drop (grace ${RECONNECT_GRACE_MS} ms)`)
  t.match(redisLines(logs)[0], /redis unavailable/)
  t.equal(connection.available, false)
  server.resume()
  await until('available again', async () => connection.available, 10_000, 10)
  t.equal(redisLines(logs).length, 2, 'the outage and the recovery, once each')
})

/** Drops the connection `times` times; at the client's next `event` after each drop runs `during`; waits until it is available again. */
async function dropsWith(t: Test, server: RedisServer, connection: RedisConnection, times: number, event: 'close' | 'connect' | 'ready', during: () => void): Promise<void> {
  for (let i = 0; i < times; i++) {
    const done = new Promise<void>((resolve) => connection.client.once(event, () => resolve(during())))
    await dropConnection(t, server)
    await done
    await until('available again', async () => connection.available, 3000, 1)
  }
}

t.test('a connection that ends during its reconnect handshake: the reconnect after it decides, nothing logged', async (t) => {
  const { server, connection, logs } = await connect(t)
  // The reconnect has its socket (status connect) and sends its ready check; our side ends it right then.
  await dropsWith(t, server, connection, 3, 'connect', () => (connection.client as Redis).stream.end())
  await sleep(1500)
  t.same(redisLines(logs), [], "nothing logged: \"Stream isn't writeable\" under a handshake is this process's own doing")
})

for (const [event, when] of [
  ['close', "right after a drop: ioredis's 50 ms reconnect and the grace both fall due in the stall"],
  ['connect', 'under the reconnect (connected, its ready check on its way): the grace falls due in the stall'],
  ['ready', "at the reconnect's ready (its verify on its way): the grace falls due in the stall"],
] as const) {
  t.test(`an event loop stalled past the grace ${when}; nothing logged`, async (t) => {
    const { server, connection, logs } = await connect(t)
    // After the connection's own handler for the event (registered first) has run.
    await dropsWith(t, server, connection, 2, event, () => {
      const until = Date.now() + RECONNECT_GRACE_MS + 300
      while (Date.now() < until);
    })
    await sleep(1500)
    t.same(redisLines(logs), [], 'nothing logged: Redis never stopped taking writes')
  })
}

/** A TCP proxy in front of Redis (as HAProxy or envoy sit): it pipes while `closeAfterMs` says undefined, else accepts and closes that much later. */
async function tcpProxy(t: Test, port: number, closeAfterMs: () => number | undefined): Promise<{ url: string; dropAll: () => void }> {
  const sockets = new Set<Socket>()
  const proxy = createServer((client) => {
    sockets.add(client)
    client.on('close', () => sockets.delete(client))
    client.on('error', () => {})
    const delay = closeAfterMs()
    if (delay !== undefined) return void setTimeout(() => client.destroy(), delay)
    const upstream = connectTcp(port, '127.0.0.1')
    upstream.on('error', () => client.destroy())
    upstream.on('close', () => client.destroy())
    client.on('close', () => upstream.destroy())
    client.pipe(upstream).pipe(client)
  })
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
  const dropAll = (): void => sockets.forEach((s) => s.destroy())
  t.teardown(() => (dropAll(), proxy.close()))
  return { url: `redis://127.0.0.1:${(proxy.address() as { port: number }).port}`, dropAll }
}

// [closes after ms, longest retry delay ms, command timeout ms]: the second closes each attempt before its ready check times out.
for (const [closeAfterMs, maxRetryDelayMs, commandTimeoutMs] of [
  [150, 1000, COMMAND_TIMEOUT_MS],
  [300, 100, 400],
] as const) {
  t.test(`Redis gone behind a proxy that accepts each reconnect and closes it ${closeAfterMs} ms later (retries every ≤ ${maxRetryDelayMs} ms): logged once, within the grace`, async (t) => {
    const server = await startRedisServer(t)
    let gone = false
    const proxy = await tcpProxy(t, server.port, () => (gone ? closeAfterMs : undefined))
    const { connection, logs } = await open(t, proxy.url, { commandTimeoutMs, probeAfterMs: 100, maxRetryDelayMs })
    t.equal(connection.available, true)
    gone = true
    await server.kill()
    const dropped = Date.now()
    proxy.dropAll()
    // Each attempt connects (to the proxy) and closes without an error of its own: only the grace can decide.
    await until('the outage logged', async () => redisLines(logs).length > 0, 5000, 5)
    const after = Date.now() - dropped
    // At the grace, or sooner where an attempt's ready check runs out of time first (an error of its own).
    t.ok(after < 2 * RECONNECT_GRACE_MS, `logged ${after} ms after the drop (grace ${RECONNECT_GRACE_MS} ms, from the first attempt)`)
    await sleep(1500)
    t.equal(redisLines(logs).length, 1, 'once, however many attempts follow')
    t.match(redisLines(logs)[0], /redis unavailable/)
  })
}

t.test('a Redis restarted between two reconnects (no outage seen): logged once as another server process', async (t) => {
  const { server, connection, logs } = await connect(t)
  const pidfile = join(tmpdir(), `tkb-restart-${server.port}.pid`)
  t.teardown(() => {
    try {
      process.kill(Number(readFileSync(pidfile, 'utf8')), 'SIGKILL')
    } catch {}
    rmSync(pidfile, { force: true })
  })
  // The whole restart while this process's event loop is blocked: when it runs again, the connection is closed and the new Redis answers.
  const port = String(server.port)
  spawnSync('redis-cli', ['-p', port, 'shutdown', 'nosave'], { timeout: 5000 })
  const args = ['--port', port, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'yes', '--pidfile', pidfile]
  t.equal(spawnSync('redis-server', args, { timeout: 5000 }).status, 0, 'a new redis-server started')
  const deadline = Date.now() + 5000
  while (spawnSync('redis-cli', ['-p', port, 'ping'], { encoding: 'utf8' }).stdout.trim() !== 'PONG' && Date.now() < deadline);
  await until('the new server noted', async () => redisLines(logs).length > 0, 3000, 5)
  t.equal(connection.available, true)
  await sleep(1500)
  t.equal(redisLines(logs).length, 1, 'one line, and no outage: the reconnect was ready at once')
  t.match(redisLines(logs)[0], /another server process than before/)
  t.match(JSON.parse(redisLines(logs)[0]!), { level: 40, runId: /^\w{40}$/, previousRunId: /^\w{40}$/ })
})
