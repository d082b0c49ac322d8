import { randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { OverrideStore } from '../admin/overrides.js'
import type { TenantPatch } from '../config/tenant-patch.js'
import { BrokerError } from '../errors.js'
import type { RedisHealth } from './health.js'

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
  readonly #redis: Redis
  readonly #health: RedisHealth
  readonly #patches: string
  readonly #version: string
  #lastVersion = '0'

  constructor(redis: Redis, health: RedisHealth, prefix = 'tkb:') {
    this.#redis = redis
    this.#health = health
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
  async save(tenantId: string, patch: TenantPatch): Promise<void> {
    if (!this.#health.available) throw unavailable()
    try {
      const version = `${Date.now()}-${randomBytes(6).toString('hex')}`
      await this.#redis.multi().hset(this.#patches, tenantId, JSON.stringify(patch)).set(this.#version, version).exec()
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
