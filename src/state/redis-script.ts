import type { RedisClient } from './redis-client.js'

/** Runs one registered Lua script with its keys and arguments. */
export type RedisScript<T> = (keys: readonly string[], args: ReadonlyArray<string | number>) => Promise<T>

/**
 * Registers a Lua script on a client once and answers a typed caller. ioredis
 * sends it as EVALSHA and falls back to EVAL after a NOSCRIPT (a restarted or
 * newly promoted Redis). On a Cluster the command goes to the primary of its
 * first key's slot, so every key of one script must share a hash tag.
 *
 * @example
 * const incr = defineScript<[number, number]>(redis, 'tkbIncr', 1, INCR_LUA)
 * const [count, ttl] = await incr([key], [60_000])
 */
export function defineScript<T>(redis: RedisClient, name: string, numberOfKeys: number, lua: string): RedisScript<T> {
  const commands = redis as unknown as Record<string, ((...args: unknown[]) => Promise<T>) | undefined>
  if (commands[name] === undefined) redis.defineCommand(name, { numberOfKeys, lua })
  const command = commands[name] as (...args: unknown[]) => Promise<T>
  return (keys, args) => command.call(redis, ...keys, ...args)
}
