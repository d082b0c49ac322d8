import { randomBytes } from 'node:crypto'
import type { OverrideStore } from '../admin/overrides.js'
import type { TenantPatch } from '../config/tenant-patch.js'
import { BrokerError } from '../errors.js'
import type { RedisHealth } from './health.js'
import type { RedisClient } from './redis-client.js'
import { defineScript, type RedisScript } from './redis-script.js'

// Compare-and-set: the patch lands only if nobody saved since the caller looked.
const SAVE = `
local current = redis.call('GET', KEYS[1]) or '0'
if current ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('SET', KEYS[1], ARGV[4])
return 1`

const unavailable = () =>
  new BrokerError('UPSTREAM_UNAVAILABLE', 'Shared state (Redis) is unavailable; the change could not be shared with every replica. Retry.', {
    headers: { 'retry-after': 5 },
  })

/**
 * Operators' tenant patches shared through Redis: one hash of JSON patches
 * and a version key, both under the `{overrides}` hash tag so one MULTI
 * writes them together. The version is random, not a counter: a Redis that
 * lost its data and was written again can never repeat a version a replica
 * has already seen. Patches hold no secrets (limits, switches, ranges).
 */
export class RedisOverrideStore implements OverrideStore {
  readonly #redis: RedisClient
  readonly #health: RedisHealth
  readonly #patches: string
  readonly #version: string
  #lastVersion = '0'
  readonly #save: RedisScript<number>

  constructor(redis: RedisClient, health: RedisHealth, prefix = 'tkb:') {
    this.#redis = redis
    this.#health = health
    this.#save = defineScript(redis, 'tkbOverrideSave', 2, SAVE)
    this.#patches = `${prefix}{overrides}:patches`
    this.#version = `${prefix}{overrides}:version`
  }

  async load(): Promise<Map<string, TenantPatch>> {
    const raw = await this.#redis.hgetall(this.#patches)
    const patches = new Map<string, TenantPatch>()
    for (const [tenantId, json] of Object.entries(raw)) {
      try {
        patches.set(tenantId, JSON.parse(json) as TenantPatch)
      } catch {
        // not ours to repair: the registry keeps that tenant's current settings
      }
    }
    return patches
  }

  /** A change nobody else will see is refused (503), rather than applied on one replica only. */
  async save(tenantId: string, patch: TenantPatch, expectedVersion: string): Promise<string | null> {
    if (!this.#health.available) throw unavailable()
    const version = `${Date.now()}-${randomBytes(6).toString('hex')}`
    try {
      const saved = await this.#save([this.#version, this.#patches], [expectedVersion, tenantId, JSON.stringify(patch), version])
      if (saved !== 1) return null
      this.#lastVersion = version
      return version
    } catch (err) {
      this.#health.noteFailure(err)
      throw unavailable()
    }
  }

  /** While Redis is away, the last version seen: the replica keeps its overrides and polls quietly. */
  async version(): Promise<string> {
    if (!this.#health.available) return this.#lastVersion
    try {
      this.#lastVersion = (await this.#redis.get(this.#version)) ?? '0'
    } catch (err) {
      this.#health.noteFailure(err)
    }
    return this.#lastVersion
  }

  /** The connection belongs to the state, which quits it. */
  async close(): Promise<void> {}
}
