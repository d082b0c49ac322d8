import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import type { Test } from 'tap'

/** The shared Redis the store and counter tests use, each under its own key prefix. */
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'

/** A client on the test Redis and a fresh key prefix; the prefix's keys are deleted at teardown. */
export async function redisForTest(t: Test): Promise<{ redis: Redis; prefix: string }> {
  const redis = new Redis(TEST_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 })
  await redis.connect()
  const prefix = `tkb:test:${randomBytes(6).toString('hex')}:`
  t.teardown(async () => {
    const keys = await scanKeys(redis, prefix)
    if (keys.length > 0) await redis.del(...keys)
    await redis.quit()
  })
  return { redis, prefix }
}

/** Every key under `prefix` (SCAN, so it is safe on a busy Redis). */
export async function scanKeys(redis: Redis, prefix = ''): Promise<string[]> {
  const keys: string[] = []
  let cursor = '0'
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
    cursor = next
    keys.push(...batch)
  } while (cursor !== '0')
  return keys
}

/** Each key under `prefix` with every value it holds, whatever its type, for at-rest checks. */
export async function dumpKeys(redis: Redis, prefix = ''): Promise<Array<{ key: string; values: string[] }>> {
  const out: Array<{ key: string; values: string[] }> = []
  for (const key of await scanKeys(redis, prefix)) {
    const type = await redis.type(key)
    const values =
      type === 'string' ? [(await redis.get(key)) ?? '']
      : type === 'set' ? await redis.smembers(key)
      : type === 'hash' ? Object.entries(await redis.hgetall(key)).flat()
      : type === 'list' ? await redis.lrange(key, 0, -1)
      : type === 'zset' ? await redis.zrange(key, 0, -1)
      : [`<${type}>`]
    out.push({ key, values })
  }
  return out
}

/** Fails `t` when a key name or value holds any of `secrets` in clear; answers how many keys were looked at. */
export async function assertNothingInClear(t: Test, redis: Redis, secrets: string[], prefix = ''): Promise<number> {
  const dump = await dumpKeys(redis, prefix)
  for (const { key, values } of dump) {
    for (const secret of secrets) {
      if (key.includes(secret)) t.fail(`key ${key} names a secret in clear`)
      if (values.some((v) => v.includes(secret))) t.fail(`value of ${key} holds a secret in clear (${secret.slice(0, 10)}…)`)
    }
  }
  return dump.length
}

/** A free TCP port on 127.0.0.1 (free when asked; good enough for a test's child process). */
export async function freePort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

/** A `redis-server` child that a test may kill and start again on the same port. */
export interface RedisServer {
  port: number
  url: string
  /** Kills it at once (SIGKILL: no goodbye to the clients). */
  kill(): Promise<void>
  /** Starts it again, empty, on the same port; resolves once it answers PING. */
  start(): Promise<void>
  /** Freezes it (SIGSTOP): connections stay open, nothing answers. */
  pause(): void
  /** Thaws a paused server (SIGCONT). */
  resume(): void
}

/** Starts a throwaway `redis-server` (no persistence) on `port` or a free one; the caller kills it. */
export async function spawnRedisServer(port?: number): Promise<RedisServer> {
  const p = port ?? (await freePort())
  let child: ChildProcess | undefined
  const server: RedisServer = {
    port: p,
    url: `redis://127.0.0.1:${p}`,
    async kill() {
      const c = child
      child = undefined
      if (c === undefined || c.exitCode !== null) return
      const exited = once(c, 'exit')
      c.kill('SIGKILL')
      c.kill('SIGCONT')
      await exited
    },
    pause: () => void child?.kill('SIGSTOP'),
    resume: () => void child?.kill('SIGCONT'),
    async start() {
      const args = ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']
      child = spawn('redis-server', args, { stdio: 'ignore' })
      await waitForPing(p)
    },
  }
  await server.start()
  return server
}

/** {@link spawnRedisServer}, killed at the test's teardown. */
export async function startRedisServer(t: Test, port?: number): Promise<RedisServer> {
  const server = await spawnRedisServer(port)
  t.teardown(() => server.kill())
  return server
}

async function waitForPing(port: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
    probe.on('error', () => {})
    try {
      await probe.connect()
      await probe.ping()
      return
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer: ${(err as Error).message}`)
      await sleep(25)
    } finally {
      probe.disconnect()
    }
  }
}
