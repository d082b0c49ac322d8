import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { boundCommands } from '../../src/state/command-deadline.js'
import { defineScript } from '../../src/state/redis-script.js'
import { startRedisServer } from '../helpers/redis.js'

// Stores its argument under its first key and answers every key it was given, the arguments and the stored value.
const ECHO = `
redis.call('SET', KEYS[1], ARGV[1])
return {KEYS[1], KEYS[2], ARGV[1], ARGV[2], redis.call('GET', KEYS[1])}
`
const FAILS = `return redis.error_reply('WRONGTHING this script always fails')`

/** A client like the broker's (no offline queue, commands bounded) on a Redis of its own: these tests flush its scripts. */
async function client(t: Test, keyPrefix?: string): Promise<{ redis: Redis; plain: Redis }> {
  const server = await startRedisServer(t)
  const options = { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true }
  const redis = new Redis(server.url, keyPrefix === undefined ? options : { ...options, keyPrefix })
  const plain = new Redis(server.url, options)
  await Promise.all([redis.connect(), plain.connect()])
  boundCommands(redis, 1000)
  t.teardown(() => {
    redis.disconnect()
    plain.disconnect()
  })
  return { redis, plain }
}

t.test("keys get the client's keyPrefix, arguments are sent as given, replies come as strings", async (t) => {
  const { redis, plain } = await client(t, 'tkb:x:')
  const echo = defineScript<string[]>(redis, 2, ECHO)
  t.same(await echo(['a', 'b'], ['v1', 7]), ['tkb:x:a', 'tkb:x:b', 'v1', '7', 'v1'])
  t.equal(await plain.get('tkb:x:a'), 'v1', 'the key Redis holds is the prefixed one')
  t.equal(await plain.get('a'), null)
})

t.test('without a keyPrefix the keys are sent as they are', async (t) => {
  const { redis, plain } = await client(t)
  const echo = defineScript<string[]>(redis, 2, ECHO)
  t.same(await echo(['a', 'b'], ['v2', 'w']), ['a', 'b', 'v2', 'w', 'v2'])
  t.equal(await plain.get('a'), 'v2')
})

/** EVALSHA and EVAL calls since the last CONFIG RESETSTAT (INFO commandstats). */
async function scriptCalls(redis: Redis): Promise<{ evalsha: number; eval: number }> {
  const stats = await redis.info('commandstats')
  const calls = (name: string): number => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(stats)?.[1] ?? 0)
  return { evalsha: calls('evalsha'), eval: calls('eval') }
}

t.test('a Redis that does not hold the script (first use, SCRIPT FLUSH) gets it sent once by EVAL, and then EVALSHA works', async (t) => {
  const { redis, plain } = await client(t)
  const echo = defineScript<string[]>(redis, 2, ECHO)
  const sha = (await plain.script('LOAD', ECHO)) as string
  await plain.script('FLUSH')
  t.same(await plain.script('EXISTS', sha), [0], 'not held before the first call')
  t.same(await echo(['k', 'l'], ['1', '2']), ['k', 'l', '1', '2', '1'], 'the first call is answered')
  t.same(await plain.script('EXISTS', sha), [1], 'the EVAL loaded it: the sha is the script’s SHA-1')
  await plain.script('FLUSH')
  await plain.config('RESETSTAT')
  t.same(await echo(['k', 'l'], ['3', '4']), ['k', 'l', '3', '4', '3'], 'answered again after a flush')
  t.same(await scriptCalls(plain), { evalsha: 1, eval: 1 }, 'one EVALSHA refused (NOSCRIPT), then one EVAL')
  await plain.config('RESETSTAT')
  t.same(await echo(['k', 'l'], ['5', '6']), ['k', 'l', '5', '6', '5'])
  t.same(await scriptCalls(plain), { evalsha: 1, eval: 0 }, 'a held script costs one EVALSHA and nothing more')
})

t.test("the script's own error reaches the caller as it is (no second attempt)", async (t) => {
  const { redis } = await client(t)
  const fails = defineScript(redis, 0, FAILS)
  await t.rejects(fails([], []), /WRONGTHING this script always fails/)
})

t.test('a key count other than the defined one is a programming error, thrown before anything is sent', async (t) => {
  const { redis } = await client(t)
  const echo = defineScript<string[]>(redis, 2, ECHO)
  t.throws(() => echo(['only-one'], ['v']), RangeError)
})

t.test('a client that cannot send (no connection, no offline queue) rejects the call', async (t) => {
  const { redis } = await client(t)
  const echo = defineScript<string[]>(redis, 2, ECHO)
  redis.disconnect()
  await t.rejects(echo(['a', 'b'], ['v', 'w']))
})
