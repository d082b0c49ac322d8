import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type { LoadedOverrides, OverrideStore, RejectedOverride } from '../admin/overrides.js'
import { derivePurposeKey } from '../cache/crypto.js'
import { tenantPatchSchema, type TenantPatch } from '../config/tenant-patch.js'
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

/** Stored values are `v1.<mac>.<json>`; the MAC covers the tenant id and the exact JSON text. */
const FORMAT = 'v1'

/**
 * The key that authenticates stored overrides, derived (HKDF, its own purpose)
 * from `CACHE_ENCRYPTION_KEY` or, when unset, the tik.tools key, as the cache
 * keys are: every replica agrees without extra configuration, and nobody
 * without that secret can write a patch a replica accepts.
 */
export function overrideMacKey(source: { cacheEncryptionKey: string | undefined; apiKey: string }): Uint8Array {
  return derivePurposeKey(source.cacheEncryptionKey ?? source.apiKey, 'admin overrides (HMAC-SHA256)')
}

function mac(key: Uint8Array, tenantId: string, json: string): Buffer {
  return createHmac('sha256', key).update(`${tenantId}\u0000${json}`).digest()
}

/** A stored value as the store writes it. */
export function sealOverride(key: Uint8Array, tenantId: string, patch: TenantPatch): string {
  const json = JSON.stringify(patch)
  return `${FORMAT}.${mac(key, tenantId, json).toString('base64url')}.${json}`
}

/**
 * A stored value read back: the patch when its MAC is ours and it passes the
 * strict PATCH schema (so `auth`, `cors` and `creators` can never come from
 * Redis), else why not. Nothing in Redis is trusted because it is there.
 */
export function openOverride(key: Uint8Array, tenantId: string, stored: string): TenantPatch | { rejected: string } {
  const first = stored.indexOf('.')
  const second = stored.indexOf('.', first + 1)
  if (first < 0 || second < 0 || stored.slice(0, first) !== FORMAT) return { rejected: 'not a sealed override' }
  const given = Buffer.from(stored.slice(first + 1, second), 'base64url')
  const json = stored.slice(second + 1)
  const expected = mac(key, tenantId, json)
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { rejected: 'MAC does not verify' }
  let value: unknown
  try {
    value = JSON.parse(json)
  } catch {
    return { rejected: 'not JSON' }
  }
  const parsed = tenantPatchSchema.safeParse(value)
  if (!parsed.success) return { rejected: 'not a valid tenant patch' }
  return parsed.data
}

/**
 * Operators' tenant patches shared through Redis: one hash of sealed patches
 * and a version key, both under the `{overrides}` hash tag so one MULTI
 * writes them together. The version is random, not a counter: a Redis that
 * lost its data and was written again can never repeat a version a replica
 * has already seen. Patches hold no secrets (limits, switches, ranges), but
 * they are authority, so each one carries a MAC and is validated when read.
 */
export class RedisOverrideStore implements OverrideStore {
  readonly #redis: RedisClient
  readonly #health: RedisHealth
  readonly #macKey: Uint8Array
  readonly #patches: string
  readonly #version: string
  #lastVersion = '0'
  readonly #save: RedisScript<number>

  constructor(redis: RedisClient, health: RedisHealth, prefix: string, macKey: Uint8Array) {
    this.#redis = redis
    this.#health = health
    this.#macKey = macKey
    this.#save = defineScript(redis, 2, SAVE)
    this.#patches = `${prefix}{overrides}:patches`
    this.#version = `${prefix}{overrides}:version`
  }

  async load(): Promise<LoadedOverrides> {
    const raw = await this.#redis.hgetall(this.#patches)
    const patches = new Map<string, TenantPatch>()
    const rejected: RejectedOverride[] = []
    for (const [tenantId, stored] of Object.entries(raw)) {
      const opened = openOverride(this.#macKey, tenantId, stored)
      if ('rejected' in opened) {
        // Not ours to repair: the registry keeps that tenant's current settings.
        const fingerprint = createHash('sha256').update(`${tenantId}\u0000${stored}`).digest('base64url').slice(0, 16)
        rejected.push({ tenantId, reason: opened.rejected, fingerprint })
      } else {
        patches.set(tenantId, opened)
      }
    }
    return { patches, rejected }
  }

  /** A change nobody else will see is refused (503), rather than applied on one replica only. */
  async save(tenantId: string, patch: TenantPatch, expectedVersion: string): Promise<string | null> {
    if (!this.#health.available) throw unavailable()
    const version = `${Date.now()}-${randomBytes(6).toString('hex')}`
    try {
      const saved = await this.#save([this.#version, this.#patches], [expectedVersion, tenantId, sealOverride(this.#macKey, tenantId, patch), version])
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
