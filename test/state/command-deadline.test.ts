import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { boundCommands, COMMAND_TIMED_OUT, watchedCommands } from '../../src/state/command-deadline.js'
import { startRedisServer, TEST_REDIS_URL } from '../helpers/redis.js'

const DEADLINE_MS = 100

/** A client like the broker's (no offline queue); `commandTimeout` only where a test asks for ioredis's own. */
async function client(t: Test, url: string, commandTimeout?: number): Promise<Redis> {
  const options = { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true }
  const redis = new Redis(url, commandTimeout === undefined ? options : { ...options, commandTimeout })
  await redis.connect()
  t.teardown(() => redis.disconnect())
  return redis
}

/** A bounded client of a Redis of its own, paused (SIGSTOP) until the test ends or resumes it. */
async function pausedRedis(t: Test, deadline: number): Promise<{ redis: Redis; resume: () => void }> {
  const server = await startRedisServer(t)
  const redis = await client(t, server.url)
  boundCommands(redis, deadline)
  server.pause()
  t.teardown(() => server.resume())
  return { redis, resume: () => server.resume() }
}

/** Keeps the event loop busy, as a burst of requests or a loaded machine does. */
function busy(ms: number): void {
  const end = performance.now() + ms
  while (performance.now() < end);
}

/** Sends a write, then keeps this process busy past the deadline before it can read the answer. */
async function writeWhileBusy(redis: Redis): Promise<string> {
  const answer = redis.set('tkb:test:command-deadline', '1', 'PX', 1000).then(
    (ok) => `answered ${ok}`,
    (err: Error) => err.message,
  )
  busy(3 * DEADLINE_MS)
  return answer
}

t.test("a reply that arrived while this process was busy is not a timeout (ioredis's own timer says it is)", async (t) => {
  const own = await client(t, TEST_REDIS_URL, DEADLINE_MS)
  t.equal(await writeWhileBusy(own), COMMAND_TIMED_OUT, 'ioredis commandTimeout: the timer runs before the reply is read')
  const bounded = await client(t, TEST_REDIS_URL)
  boundCommands(bounded, DEADLINE_MS)
  t.equal(await writeWhileBusy(bounded), 'answered OK', 'boundCommands: the reply waiting in the socket is read first')
  const transaction = bounded.multi().set('tkb:test:command-deadline', '2', 'PX', 1000).get('tkb:test:command-deadline').exec()
  busy(3 * DEADLINE_MS)
  t.equal((await transaction)?.[1]?.[1], '2', 'a transaction whose answer waited goes through too')
})

t.test('a machine that stood still (Redis with it) gets one more window: the stall was not Redis being slow', async (t) => {
  // A longer deadline here: Redis must get the CPU within the extra window, on a machine that may be loaded itself.
  const deadline = 500
  const { redis, resume } = await pausedRedis(t, deadline)
  const answer = redis.set('tkb:test:command-deadline', '1', 'PX', 1000).then(
    (ok) => `answered ${ok}`,
    (err: Error) => err.message,
  )
  busy(2 * deadline)
  // Redis gets going again only after this process has seen its deadline pass (late): within the next window.
  setTimeout(resume, deadline / 10)
  t.equal(await answer, 'answered OK')
})

t.test('a Redis that does not answer still fails at the deadline', async (t) => {
  const { redis } = await pausedRedis(t, DEADLINE_MS)
  const started = performance.now()
  const err = await redis.get('x').catch((e: Error) => e)
  const took = performance.now() - started
  t.match(err, { message: COMMAND_TIMED_OUT })
  t.ok(took >= DEADLINE_MS && took < 10 * DEADLINE_MS, `failed after ${Math.round(took)} ms`)
  const multi = await redis.multi().get('x').exec().catch((e: Error) => e)
  t.match(multi, { message: COMMAND_TIMED_OUT }, 'a transaction is bounded too')
})

t.test('commands sent in one turn of the event loop leave in one write, each still answered (and bounded) on its own', async (t) => {
  const bounded = await client(t, TEST_REDIS_URL)
  boundCommands(bounded, DEADLINE_MS)
  const socket = (bounded as unknown as { stream: { _writeGeneric: (...args: unknown[]) => unknown } }).stream
  let writes = 0
  const write = socket._writeGeneric.bind(socket)
  socket._writeGeneric = (...args: unknown[]) => {
    writes += 1
    return write(...args)
  }
  const key = 'tkb:test:command-deadline:coalesced'
  const answers = await Promise.all([bounded.set(key, 'v', 'PX', 1000), bounded.get(key), bounded.pttl(key), bounded.get('tkb:test:nothing-here')])
  t.same(answers.slice(0, 2), ['OK', 'v'])
  t.ok((answers[2] as number) > 0)
  t.equal(answers[3], null)
  t.equal(writes, 1, 'four commands, one write')
  await bounded.get(key)
  t.equal(writes, 2, 'a command on its own is written in its own turn')
  // Commands sent from separate callbacks of one turn (requests read in one poll phase) share a write too.
  const [, , later] = await Promise.all([
    new Promise((resolve) => setImmediate(() => resolve(bounded.get(key)))),
    new Promise((resolve) => setImmediate(() => resolve(bounded.pttl(key)))),
    new Promise((resolve) => setImmediate(() => process.nextTick(() => resolve(bounded.get(key))))),
  ])
  t.equal(later, 'v')
  t.equal(writes, 3, 'three commands from three callbacks of one turn, one write')
})

t.test('one timer per connection, not one per command; answered and refused commands are let go', async (t) => {
  const bounded = await client(t, TEST_REDIS_URL)
  boundCommands(bounded, DEADLINE_MS)
  const key = 'tkb:test:command-deadline:many'
  await bounded.set(key, 'v', 'PX', 1000)
  const realSetTimeout = globalThis.setTimeout
  let timers = 0
  globalThis.setTimeout = ((...args: Parameters<typeof setTimeout>) => {
    timers += 1
    return realSetTimeout(...args)
  }) as typeof setTimeout
  t.teardown(() => void (globalThis.setTimeout = realSetTimeout))
  const answers = await Promise.all(Array.from({ length: 1000 }, () => bounded.get(key)))
  globalThis.setTimeout = realSetTimeout
  t.ok(answers.every((a) => a === 'v'), 'every command answered')
  t.ok(timers <= 1, `1,000 commands in flight set ${timers} timer(s)`)
  // An error reply is a settled command too (ioredis marks only successes as resolved).
  const refused = await bounded.lpush(key, 'x').catch((e: Error) => e)
  t.match(refused, { message: /WRONGTYPE/ })
  await bounded.get(key)
  await bounded.get(key)
  t.equal(watchedCommands(bounded), 1, 'only the last command is still watched: the answered and the refused were let go')
})

t.test('each command has its own deadline, counted from when it was sent', async (t) => {
  const { redis } = await pausedRedis(t, DEADLINE_MS)
  const started = performance.now()
  const failedAt = (p: Promise<unknown>): Promise<number> =>
    p.then(
      () => -1,
      () => performance.now() - started,
    )
  const first = failedAt(redis.get('a'))
  await new Promise((resolve) => setTimeout(resolve, DEADLINE_MS / 2))
  const second = failedAt(redis.get('b'))
  const [a, b] = await Promise.all([first, second])
  t.ok(a >= DEADLINE_MS, `the first failed after ${Math.round(a)} ms`)
  t.ok(b >= 1.5 * DEADLINE_MS - 1, `the second, sent ${DEADLINE_MS / 2} ms later, failed after ${Math.round(b)} ms`)
  t.equal(watchedCommands(redis), 0, 'nothing left to watch')
})
