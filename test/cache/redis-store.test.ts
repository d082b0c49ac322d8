import t from 'tap'
import { deriveCacheKeys } from '../../src/cache/crypto.js'
import { RedisTokenStore } from '../../src/cache/redis-store.js'
import type { CachedToken, TokenKey } from '../../src/cache/token-store.js'
import { assertNothingInClear, redisForTest, scanKeys, TEST_REDIS_URL } from '../helpers/redis.js'
import { tokenStoreContract } from './token-store.contract.js'

const API_KEY = 'tt-api-key-for-redis-store-tests'
const keys = deriveCacheKeys({ encryptionKey: undefined, apiKey: API_KEY })

tokenStoreContract(
  t,
  'RedisTokenStore',
  async (t) => {
    const { redis, prefix } = await redisForTest(t)
    return new RedisTokenStore({ redis, keys, prefix })
  },
  { exclusiveLock: true },
)

const alice: TokenKey = { tenantId: 'acme', subject: 'alice@example.com', grant: 'streamer1|1|600' }
const minted: CachedToken = { token: 'eyJhbGciOiJIUzI1NiJ9.secret-payload.sig', expiresAt: 2e9, issuedAt: null, expireAfter: 600 }

t.test('at rest: values are compact JWE, key names hold no subject, grant or token', async (t) => {
  const { redis, prefix } = await redisForTest(t)
  const store = new RedisTokenStore({ redis, keys, prefix })
  await store.set(alice, minted, 10_000)
  await store.acquireMintLock(alice, 10_000)
  await store.set({ ...alice, subject: null }, minted, 10_000)
  const names = await scanKeys(redis, prefix)
  t.equal(names.length, 5, 'subject token, index, lock, the set naming the lock, shared token')
  t.equal(await assertNothingInClear(t, redis, [minted.token, 'secret-payload', 'alice', 'streamer1', API_KEY], prefix), 5)
  const [tokenKey] = names.filter((n) => n.includes(':tok:'))
  const sealed = (await redis.get(tokenKey as string)) as string
  t.match(sealed, /^eyJ[\w-]+\.\.[\w-]+\.[\w-]+\.[\w-]+$/, 'compact JWE with dir: an empty encrypted key')
  t.match(JSON.parse(Buffer.from(sealed.split('.')[0] as string, 'base64url').toString()), { alg: 'dir', enc: 'A256GCM' })
})

t.test('key names: one hash tag per (tenant, subject), so each script stays in one Cluster slot', async (t) => {
  const { redis, prefix } = await redisForTest(t)
  const store = new RedisTokenStore({ redis, keys, prefix })
  await store.set(alice, minted, 10_000)
  await store.set({ ...alice, grant: 'other|1|600' }, minted, 10_000)
  await store.acquireMintLock(alice, 10_000)
  const tags = new Set((await scanKeys(redis, prefix)).map((k) => /\{([^}]+)\}/.exec(k)?.[1]))
  t.equal(tags.size, 1)
  t.match([...tags][0], /^acme:s:[\w-]{22}$/)
})

t.test('a value sealed with another key, tampered or moved to another key is a miss, not an error', async (t) => {
  const { redis, prefix } = await redisForTest(t)
  const store = new RedisTokenStore({ redis, keys, prefix })
  await store.set(alice, minted, 10_000)
  const otherSeal = deriveCacheKeys({ encryptionKey: 'a new CACHE_ENCRYPTION_KEY', apiKey: API_KEY }).sealKey
  const rotated = new RedisTokenStore({ redis, keys: { nameKey: keys.nameKey, sealKey: otherSeal }, prefix })
  t.equal(await rotated.get(alice), undefined, 'sealed under the old key')

  const tokenKeys = async () => (await scanKeys(redis, prefix)).filter((n) => n.includes(':tok:'))
  const [aliceKey] = await tokenKeys()
  const bob: TokenKey = { ...alice, subject: 'bob' }
  await store.set(bob, { ...minted, token: 'bobs' }, 10_000)
  const bobKey = (await tokenKeys()).find((n) => n !== aliceKey)
  await redis.set(bobKey as string, (await redis.get(aliceKey as string)) as string)
  t.equal(await store.get(bob), undefined, "alice's value under bob's key does not open")
  await redis.set(aliceKey as string, 'not a JWE at all')
  t.equal(await store.get(alice), undefined, 'garbage')
})

t.test('keys: derived the same on every replica; an explicit key and the API key give different ones', async (t) => {
  const again = deriveCacheKeys({ encryptionKey: undefined, apiKey: API_KEY })
  t.same(again, keys)
  const explicit = deriveCacheKeys({ encryptionKey: API_KEY, apiKey: API_KEY })
  t.not(Buffer.from(explicit.sealKey).toString('hex'), Buffer.from(keys.sealKey).toString('hex'))
  t.not(Buffer.from(keys.nameKey).toString('hex'), Buffer.from(keys.sealKey).toString('hex'))
  t.equal(keys.sealKey.length, 32)
})

t.test('a Redis error is thrown to the caller (the state decides what it means)', async (t) => {
  const { redis, prefix } = await redisForTest(t)
  const store = new RedisTokenStore({ redis, keys, prefix })
  const { Redis } = await import('ioredis')
  const dead = new Redis({ port: 1, lazyConnect: true, enableOfflineQueue: false })
  t.teardown(() => dead.disconnect())
  const broken = new RedisTokenStore({ redis: dead, keys, prefix })
  await t.rejects(broken.get(alice))
  await t.rejects(broken.acquireMintLock(alice, 1000))
  t.equal(await store.get(alice), undefined)
})

t.test('a mint lock whose release failed (Redis away) can be released again once Redis is back', async (t) => {
  const { redis: admin, prefix } = await redisForTest(t)
  const { Redis } = await import('ioredis')
  const redis = new Redis(TEST_REDIS_URL, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1 })
  t.teardown(() => redis.disconnect())
  await redis.connect()
  const store = new RedisTokenStore({ redis, keys, prefix })
  const lock = await store.acquireMintLock(alice, 10_000)
  const ended = new Promise((resolve) => redis.once('end', resolve))
  redis.disconnect()
  await t.rejects(lock?.release() ?? Promise.resolve(), 'no connection: the release fails')
  await ended
  await redis.connect()
  t.equal((await scanKeys(admin, prefix)).length, 2, 'the lock is still held (and named in its subject\'s set)')
  await lock?.release()
  t.equal((await scanKeys(admin, prefix)).length, 0, 'released on the second try')
  t.equal(await store.acquireMintLock(alice, 10_000).then((l) => l !== null), true, 'and free for the next holder')
})

t.test('readAlong: the token key for a script on the same Redis, and the token from what it read', async (t) => {
  const { redis, prefix } = await redisForTest(t)
  const store = new RedisTokenStore({ redis, keys, prefix })
  await store.set(alice, minted, 10_000)
  const along = store.readAlong(alice)
  if (along === undefined) return t.fail('one Redis offers a read-along')
  const read = await redis.get(along.key)
  t.type(read, 'string', 'the key named in full holds the sealed token')
  // With the token's JSON literal, made once when the sealed value was opened.
  const served = { ...minted, tokenJson: JSON.stringify(minted.token) }
  t.strictSame(await along.open(read), served, 'opened as get answers it')
  t.strictSame(along.open(read), served, 'known again at once: no promise for a value already opened')
  t.equal(await along.open(null), undefined, 'nothing there: a miss')
  t.strictSame(await along.open(undefined), served, 'nothing read: the store looks itself')
  const other = store.readAlong({ ...alice, subject: 'bob@example.com' })
  t.equal(await other?.open(read), undefined, "another key's value does not open here: a miss, not an error")
  t.equal(await along.open(`${read}x`), undefined, 'a tampered value is a miss')
})
