import { createHash } from 'node:crypto'
import { Command } from 'ioredis'
import type { RedisClient } from './redis-client.js'

/** Runs one Lua script with its keys (without the client's key prefix: it is added here) and arguments. */
export type RedisScript<T> = (keys: readonly string[], args: ReadonlyArray<string | number>) => Promise<T>

/** Redis's answer to EVALSHA for a script it does not hold (a restarted, flushed or newly promoted Redis). */
const NO_SCRIPT = 'NOSCRIPT'

/**
 * A typed caller of one Lua script, sent as EVALSHA (Redis `EVALSHA sha1 numkeys key… arg…`)
 * and, after a NOSCRIPT, once more as EVAL, which loads it. The client's `keyPrefix` is put
 * before each key here, as ioredis would. On a Cluster the command goes to the primary of its
 * first key's slot (ioredis reads the keys from `numkeys`), so every key of one script must
 * share a hash tag. Replies are decoded as UTF-8 strings.
 *
 * Built on ioredis's plain `Command` rather than `defineCommand`: a defined command's path
 * (its generated method, a `Script` command class that swaps EVAL and EVALSHA per socket,
 * a wrapped reject, a `catch` and a callback adapter per call) was ~2 µs of a Redis cache
 * hit, whose limits run one script each time. The deadline, routing and failure handling
 * are the client's own (`sendCommand`), as for any command.
 *
 * @example
 * const incr = defineScript<[number, number]>(redis, 1, INCR_LUA)
 * const [count, ttl] = await incr([key], [60_000])
 */
export function defineScript<T>(redis: RedisClient, numberOfKeys: number, lua: string): RedisScript<T> {
  const sha = createHash('sha1').update(lua).digest('hex')
  const prefix = (redis.options as { keyPrefix?: string }).keyPrefix ?? ''
  const send = (name: 'evalsha' | 'eval', script: string, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<T> => {
    const words: Array<string | number> = [script, numberOfKeys]
    for (let i = 0; i < numberOfKeys; i++) words.push(prefix + (keys[i] as string))
    for (const arg of args) words.push(arg)
    const command = new Command(name, words, { replyEncoding: 'utf8' })
    // The command's own promise: sendCommand settles it (a refusal to send, say, rejects it); nothing more to watch.
    void redis.sendCommand(command)
    return command.promise as Promise<T>
  }
  return (keys, args) => {
    if (keys.length !== numberOfKeys) throw new RangeError(`a script of ${numberOfKeys} key(s) was given ${keys.length}`)
    return send('evalsha', sha, keys, args).catch((err: Error) => (err.message.includes(NO_SCRIPT) ? send('eval', lua, keys, args) : Promise.reject(err)))
  }
}
