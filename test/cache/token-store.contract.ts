import { setTimeout as sleep } from 'node:timers/promises'
import type { Test } from 'tap'
import type { CachedToken, TokenKey, TokenStore } from '../../src/cache/token-store.js'

/** What a store promises beyond the basics: a lock other processes respect, and a wait that waits. */
export interface StoreTraits {
  /** The mint lock excludes other holders (a shared store); a per-process store always grants it. */
  exclusiveLock: boolean
}

const key = (subject: string | null, grant = 'a1|1|600', tenantId = 'acme'): TokenKey => ({ tenantId, subject, grant })
const token = (name: string): CachedToken => ({ token: `eyJ.${name}.sig`, expiresAt: 2_000_000_000, issuedAt: 1_999_999_400, expireAfter: 600 })
/** A token as a store answers it: what was stored, with the token's JSON literal made once by the store. */
const stored = (name: string): CachedToken => ({ ...token(name), tokenJson: JSON.stringify(token(name).token) })

/**
 * The behaviour every {@link TokenStore} shares; each implementation's test
 * file runs it with a factory giving a fresh, empty store.
 */
export function tokenStoreContract(t: Test, name: string, makeStore: (t: Test) => Promise<TokenStore>, traits: StoreTraits): void {
  t.test(`${name}: TokenStore contract`, async (t) => {
    t.test('get misses on an empty store; set then get answers the same token', async (t) => {
      const store = await makeStore(t)
      t.equal(await store.get(key('alice')), undefined)
      await store.set(key('alice'), token('t1'), 10_000)
      t.strictSame(await store.get(key('alice')), stored('t1'))
    })

    t.test("a token comes back as it went in, with its JSON literal, whatever its text", async (t) => {
      const store = await makeStore(t)
      // Upstream tokens are JWTs, but nothing is assumed: quotes, backslashes, commas, controls, non-Latin-1, a lone surrogate.
      const texts = ['eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig-_', 'a"b', 'back\\slash', 'one,two,,', 'line\nbreak\u0000', 'é ü', 'emoji 🎥', '\ud800 lone', '"', '\\']
      for (const [i, text] of texts.entries()) {
        const value = { token: text, expiresAt: 2_000_000_000, issuedAt: i % 2 === 0 ? null : 1_999_999_400, expireAfter: 600 }
        await store.set(key(`s${i}`), value, 10_000)
        t.strictSame(await store.get(key(`s${i}`)), { ...value, tokenJson: JSON.stringify(text) }, JSON.stringify(text))
      }
    })

    t.test('tenant, subject, grant and the shared (null) subject are four different keys', async (t) => {
      const store = await makeStore(t)
      await store.set(key('alice'), token('alice'), 10_000)
      await store.set(key('alice', 'a2|1|600'), token('grant2'), 10_000)
      await store.set(key('alice', 'a1|1|600', 'other'), token('other-tenant'), 10_000)
      await store.set(key(null), token('shared'), 10_000)
      t.same((await store.get(key('alice')))?.token, token('alice').token)
      t.same((await store.get(key('alice', 'a2|1|600')))?.token, token('grant2').token)
      t.same((await store.get(key('alice', 'a1|1|600', 'other')))?.token, token('other-tenant').token)
      t.same((await store.get(key(null)))?.token, token('shared').token)
      t.equal(await store.get(key('bob')), undefined)
    })

    t.test('a token is gone after its ttl; a ttl of 0 or less stores nothing', async (t) => {
      const store = await makeStore(t)
      // Long enough that a loaded machine (event-loop stalls of a second) still reads it back within the ttl.
      const ttlMs = 1500
      await store.set(key('alice'), token('short'), ttlMs)
      await store.set(key('bob'), token('none'), 0)
      t.ok(await store.get(key('alice')), 'there before the ttl')
      t.equal(await store.get(key('bob')), undefined)
      await sleep(ttlMs + 100)
      t.equal(await store.get(key('alice')), undefined, 'gone after the ttl')
    })

    t.test('purgeSubject forgets every grant of that subject and nothing else', async (t) => {
      const store = await makeStore(t)
      await store.set(key('alice'), token('1'), 10_000)
      await store.set(key('alice', 'a2|1|600'), token('2'), 10_000)
      await store.set(key('bob'), token('3'), 10_000)
      await store.set(key('alice', 'a1|1|600', 'other'), token('4'), 10_000)
      await store.set(key(null), token('5'), 10_000)
      t.same(await store.purgeSubject('acme', 'alice'), { tokens: 2, minting: false }, 'answers how many tokens it purged')
      t.equal(await store.get(key('alice')), undefined)
      t.equal(await store.get(key('alice', 'a2|1|600')), undefined)
      t.ok(await store.get(key('bob')), 'another subject kept')
      t.ok(await store.get(key('alice', 'a1|1|600', 'other')), 'same subject in another tenant kept')
      t.ok(await store.get(key(null)), 'tokens shared by grant kept')
      t.same(await store.purgeSubject('acme', 'nobody'), { tokens: 0, minting: false })
      await store.set(key('alice'), token('again'), 10_000)
      t.ok(await store.get(key('alice')), 'the subject caches again after a purge')
    })

    if (traits.exclusiveLock) {
      t.test('the mint lock is exclusive until released', async (t) => {
        const store = await makeStore(t)
        const first = await store.acquireMintLock(key('alice'), 5000)
        t.ok(first)
        t.equal(await store.acquireMintLock(key('alice'), 5000), null, 'a second holder is refused')
        t.ok(await store.acquireMintLock(key('bob'), 5000), 'another key has its own lock')
        await first?.release()
        await first?.release()
        const again = await store.acquireMintLock(key('alice'), 5000)
        t.ok(again, 'free again after release (released twice, harmlessly)')
        await again?.release()
      })

      t.test("a purge tells whether a mint for the subject holds the lock (on any replica), and the lock stays held", async (t) => {
        // The store keeps no note of its own locks: what its purge sees is what any replica's would.
        const store = await makeStore(t)
        const other = store
        const lock = await store.acquireMintLock(key('alice', 'a2|1|600'), 5000)
        const shared = await store.acquireMintLock(key(null), 5000) // a key shared by grant: no subject to purge
        t.same(await other.purgeSubject('acme', 'alice'), { tokens: 0, minting: true }, 'a mint in flight elsewhere is something to purge')
        t.same(await other.purgeSubject('acme', 'bob'), { tokens: 0, minting: false }, "another subject's mint is not")
        t.equal(await other.acquireMintLock(key('alice', 'a2|1|600'), 5000), null, 'the purge did not free the lock: the mint stays single')
        await lock?.release()
        await shared?.release()
        t.same(await other.purgeSubject('acme', 'alice'), { tokens: 0, minting: false }, 'released: nothing in flight')
        const lapsing = await store.acquireMintLock(key('alice'), 50)
        t.ok(lapsing)
        await sleep(100)
        t.same(await other.purgeSubject('acme', 'alice'), { tokens: 0, minting: false }, 'a lock that lapsed (its holder gone) is not a mint in flight')
      })

      t.test('a lock expires after its ttl, and only its owner may release it', async (t) => {
        const store = await makeStore(t)
        const stale = await store.acquireMintLock(key('alice'), 50)
        await sleep(100)
        const current = await store.acquireMintLock(key('alice'), 5000)
        t.ok(current, 'taken over after the ttl')
        await stale?.release()
        t.equal(await store.acquireMintLock(key('alice'), 5000), null, "the stale owner did not free the new owner's lock")
        await current?.release()
      })

      t.test('waitForToken answers the token the lock holder stores', async (t) => {
        const store = await makeStore(t)
        const lock = await store.acquireMintLock(key('alice'), 5000)
        const started = Date.now()
        const waiting = store.waitForToken(key('alice'), 2000)
        await sleep(60)
        await store.set(key('alice'), token('landed'), 10_000)
        await lock?.release()
        t.strictSame(await waiting, { token: stored('landed') })
        t.ok(Date.now() - started < 1000, 'answered soon after it landed')
      })

      t.test('waitForToken gives up when the lock goes without a token, or at the timeout', async (t) => {
        const store = await makeStore(t)
        const lock = await store.acquireMintLock(key('alice'), 5000)
        const waiting = store.waitForToken(key('alice'), 5000)
        await sleep(40)
        await lock?.release()
        let started = Date.now()
        t.equal(await waiting, undefined)
        t.ok(Date.now() - started < 500, 'stopped once the lock was gone')
        await store.acquireMintLock(key('bob'), 5000)
        started = Date.now()
        t.equal(await store.waitForToken(key('bob'), 150), undefined)
        const waited = Date.now() - started
        t.ok(waited >= 140 && waited < 1000, `bounded by the timeout (${waited} ms)`)
      })
    } else {
      t.test('the mint lock is always granted (single-flight is the token cache’s job in one process)', async (t) => {
        const store = await makeStore(t)
        t.ok(await store.acquireMintLock(key('alice'), 5000))
        t.ok(await store.acquireMintLock(key('alice'), 5000))
      })
    }

    t.test('waitForToken answers a stored token at once, and undefined without one or a lock', async (t) => {
      const store = await makeStore(t)
      await store.set(key('alice'), token('there'), 10_000)
      t.strictSame(await store.waitForToken(key('alice'), 5000), { token: stored('there') })
      const started = Date.now()
      t.equal(await store.waitForToken(key('bob'), 5000), undefined)
      t.ok(Date.now() - started < 500, 'no lock, no wait')
    })

    t.test('a purge moves the generation on: a mint that read the old one cannot store its token', async (t) => {
      const store = await makeStore(t)
      const before = await store.generation(key('alice'))
      t.equal(await store.set(key('alice'), token('ok'), 10_000, before), true, 'stored while the generation holds')
      const inFlight = await store.generation(key('alice'))
      t.same(await store.purgeSubject('acme', 'alice'), { tokens: 1, minting: false })
      t.ok((await store.generation(key('alice'))) > inFlight, 'the generation moved on')
      t.equal(await store.set(key('alice'), token('stale'), 10_000, inFlight), false, 'refused: minted before the purge')
      t.equal(await store.get(key('alice')), undefined, 'and nothing stored')
      t.equal(await store.set(key('alice'), token('fresh'), 10_000, await store.generation(key('alice'))), true)
      t.same((await store.get(key('alice')))?.token, token('fresh').token)
      t.equal(await store.set(key('bob'), token('bob'), 10_000, inFlight), true, "another subject's purge changes nothing for bob")
      t.equal(await store.set(key(null), token('shared'), 10_000, 0), true, 'a token shared by grant has no subject to purge')
    })

    t.test('delete removes the token only if it is exactly the one given', async (t) => {
      const store = await makeStore(t)
      await store.set(key('alice'), token('cached'), 10_000)
      t.equal(await store.delete(key('alice'), token('other').token), false)
      t.ok(await store.get(key('alice')), 'another value changes nothing')
      t.equal(await store.delete(key('alice'), token('cached').token), true)
      t.equal(await store.get(key('alice')), undefined)
      t.equal(await store.delete(key('bob'), 'x'), false, 'nothing cached: nothing deleted')
    })

    t.test('a failure lands under the key for its ttl; a token stored afterwards replaces it', async (t) => {
      const store = await makeStore(t)
      const failure = { code: 'UPSTREAM_ERROR' as const, message: 'tik.tools answered with an error.', headers: { 'retry-after': 5 }, until: Date.now() + 10_000 }
      t.equal(await store.landed(key('alice')), undefined)
      await store.setFailure(key('alice'), failure, 10_000)
      t.same(await store.landed(key('alice')), { failure })
      t.same(await store.waitForToken(key('alice'), 1000), { failure }, 'a waiter gets the failure at once')
      t.equal(await store.landed(key('bob')), undefined, 'only that key')
      await store.set(key('alice'), token('later'), 10_000)
      t.strictSame(await store.landed(key('alice')), { token: stored('later') }, 'a token wins')
      await store.setFailure(key('bob'), failure, 50)
      await sleep(100)
      t.equal(await store.landed(key('bob')), undefined, 'gone after its ttl')
    })

    t.test('close may be called twice', async (t) => {
      const store = await makeStore(t)
      await store.close()
      await store.close()
      t.pass()
    })
  })
}
