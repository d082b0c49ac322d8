import t from 'tap'
import { MemoryTokenStore } from '../../src/cache/memory-store.js'
import { tokenStoreContract } from './token-store.contract.js'
import { pino } from 'pino'
import { TokenCache } from '../../src/cache/token-cache.js'
import { tenantSchema } from '../../src/config/tenant-schema.js'

tokenStoreContract(t, 'MemoryTokenStore', async () => new MemoryTokenStore(), { exclusiveLock: false })

const key = (subject: string) => ({ tenantId: 'acme', subject, grant: 'a1|1|600' })

t.test('a token comes back exactly as stored, with or without iat', async (t) => {
  const store = new MemoryTokenStore()
  const token = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln-_'
  await store.set(key('u1'), { token, expiresAt: 1_800_000_600, issuedAt: 1_800_000_000, expireAfter: 600 }, 60_000)
  await store.set(key('u2'), { token, expiresAt: 1_800_000_600, issuedAt: null, expireAfter: 3600 }, 60_000)
  // With the token's JSON literal, kept in the entry so that a hit's body escapes nothing.
  const tokenJson = `"${token}"`
  t.strictSame(await store.get(key('u1')), { token, expiresAt: 1_800_000_600, issuedAt: 1_800_000_000, expireAfter: 600, tokenJson })
  t.strictSame(await store.get(key('u2')), { token, expiresAt: 1_800_000_600, issuedAt: null, expireAfter: 3600, tokenJson })
})

t.test('the store is bounded by bytes as well as by entries', async (t) => {
  const token = `eyJ.${'x'.repeat(1000)}.sig`
  const value = { token, expiresAt: 1_800_000_600, issuedAt: 1_800_000_000, expireAfter: 600 }
  const byBytes = new MemoryTokenStore({ max: 1000, maxBytes: 20_000 })
  for (let i = 0; i < 100; i++) await byBytes.set(key(`u${i}`), value, 60_000)
  let held = 0
  for (let i = 0; i < 100; i++) if ((await byBytes.get(key(`u${i}`))) !== undefined) held += 1
  t.ok(held > 0 && held < 20, `about 20 KB of ~1.3 KB entries held (${held})`)
  t.ok(await byBytes.get(key('u99')), 'the newest is kept')
  const byEntries = new MemoryTokenStore({ max: 10 })
  for (let i = 0; i < 20; i++) await byEntries.set(key(`u${i}`), value, 60_000)
  t.equal(await byEntries.get(key('u9')), undefined)
  t.ok(await byEntries.get(key('u19')))
})

t.test('a token that is not latin1 is kept intact too', async (t) => {
  const store = new MemoryTokenStore()
  const token = 'not-a-jwt-\u20ac-\u{1f600}'
  await store.set(key('u1'), { token, expiresAt: 1, issuedAt: null, expireAfter: 30 }, 60_000)
  t.equal((await store.get(key('u1')))?.token, token)
})

t.test('a lookup on this store answers at once, and so does the token cache on it: a hit needs no promise', async (t) => {
  const store = new MemoryTokenStore()
  const value = { token: 'eyJ.e30.sig', expiresAt: Math.floor(Date.now() / 1000) + 600, issuedAt: Math.floor(Date.now() / 1000), expireAfter: 600 }
  await store.set(key('u1'), value, 60_000)
  const found = store.get(key('u1'))
  t.notOk(found instanceof Promise, 'the stored token, not a promise')
  const served = { ...value, tokenJson: JSON.stringify(value.token) }
  t.strictSame(found, served)
  t.equal(store.get(key('nobody')), undefined, 'a miss is undefined at once too')

  const cache = new TokenCache({ store, minter: { mint: async () => t.fail('a lookup never mints') as never }, log: pino({ level: 'silent' }), upstreamTimeoutMs: 1000 })
  const tenant = tenantSchema.parse({ auth: { apiKeys: [`sha256:${'0'.repeat(64)}`] } })
  const grant = { tenantId: 'acme', subject: 'u1', creators: ['a1'], maxWebsockets: 1, expireAfter: 600 }
  const peeked = cache.peek({ id: 'acme', ...tenant }, grant)
  t.notOk(peeked instanceof Promise)
  t.strictSame(peeked, served)
  t.equal(cache.peek({ id: 'acme', ...tenant }, { ...grant, subject: 'nobody' }), undefined)
})
