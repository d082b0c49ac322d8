import type { Page } from 'playwright-core'
import t, { type Test } from 'tap'
import type { TenantInput } from '../../src/config/tenant-schema.js'
import { acme, userJwt } from '../helpers/broker.js'
import { launchBrowser, newPage, openAppPage } from './chromium.js'
import { ensureClientBuilt, startAppPage, startBroker, startRefusingProxy, type BrokerOptions } from './servers.js'

await ensureClientBuilt()
const browser = await launchBrowser(t)

/** The page's view of a token (`BrokerToken` of /client.js). */
interface PageToken {
  token: string
  expires_at: number
  expire_after: number
  cached: boolean
}

/**
 * Makes `globalThis.client` in the page: `createTokenClient` from the
 * imported /client.js, its clock `Date.now() + globalThis.skewMs`.
 */
async function createClient(page: Page, options: { url: string; jwt: string; renewBeforeSeconds?: number }): Promise<void> {
  await page.evaluate(({ url, jwt, renewBeforeSeconds }) => {
    const g = globalThis as any
    g.skewMs = 0
    g.client = g.tiktools.createTokenClient({
      url,
      credentials: () => jwt,
      creators: ['a1'],
      now: () => Date.now() + g.skewMs,
      ...(renewBeforeSeconds !== undefined && { renewBeforeSeconds }),
    })
  }, options)
}

/** `globalThis.client.getToken()` in the page. */
function getToken(page: Page): Promise<PageToken> {
  return page.evaluate(() => (globalThis as any).client.getToken())
}

/** An app page on its own origin, allowed by the tenant, with a broker in front of a simulator. */
async function setup(t: Test, tenant: Partial<TenantInput> = {}, brokerOptions: Omit<BrokerOptions, 'tenants'> = {}) {
  const app = await startAppPage(t)
  const broker = await startBroker(t, { tenants: [acme({ cors: { origins: [app.origin] }, ...tenant })], ...brokerOptions })
  const page = await newPage(t, browser)
  t.equal(await openAppPage(page, app.url, broker.url), 'ok')
  return { app, broker, page, jwt: await userJwt('user-1') }
}

t.test('two concurrent getToken() calls make one request to the broker', { timeout: 30_000 }, async (t) => {
  const { broker, page, jwt } = await setup(t)
  broker.sim.setFaults({ latencyMs: 200 }) // the mint is surely still in flight when the second call comes
  await createClient(page, { url: `${broker.url}/v1/token`, jwt })

  const result = await page.evaluate(async () => {
    const client = (globalThis as any).client
    const [a, b] = await Promise.all([client.getToken(), client.getToken()])
    const c = await client.getToken()
    return { shared: a === b, again: a === c, token: a.token as string }
  })
  t.ok(result.shared, 'both callers got the one answer')
  t.ok(result.again, 'a third call, later, reuses the fresh token')
  t.equal(broker.tokenPosts(), 1, 'one POST /v1/token reached the broker')
  t.equal(broker.sim.stats.mints, 1, 'one upstream mint')
})

t.test('a short-lived token is renewed before it expires (fake clock)', { timeout: 30_000 }, async (t) => {
  // One skewed clock for the simulator (token exp), the broker (its cache) and the page (the client).
  let skewMs = 0
  const now = () => Date.now() + skewMs
  const { broker, page, jwt } = await setup(t, { token: { expireAfter: { default: 30, max: 30 }, minRemaining: 10 } }, { sim: { now }, deps: { now } })
  await createClient(page, { url: `${broker.url}/v1/token`, jwt, renewBeforeSeconds: 10 })
  const skew = async (ms: number) => {
    skewMs = ms
    await page.evaluate((ms) => { (globalThis as any).skewMs = ms }, ms)
  }

  const first = await getToken(page)
  t.equal(first.expire_after, 30)
  t.equal(first.cached, false)

  await skew(15_000) // about 15 s left: still fresh for the client (renews at 10 s)
  t.equal((await getToken(page)).token, first.token)
  t.equal(broker.tokenPosts(), 1, 'a fresh token is served from the page, no request')

  await skew(21_000) // about 9 s left: due for renewal, not yet expired
  const pageNow = await page.evaluate(() => Date.now() + (globalThis as any).skewMs)
  t.ok(pageNow / 1000 < first.expires_at, 'the first token has not expired yet')
  const second = await getToken(page)
  t.equal(broker.tokenPosts(), 2, 'the client asked the broker again')
  t.not(second.token, first.token, 'and got a new token')
  t.equal(second.cached, false, 'minted anew: the broker keeps no token with less than minRemaining left')
  t.ok(second.expires_at >= first.expires_at + 20, 'valid about 30 s from the (skewed) now')
  t.equal(broker.sim.stats.mints, 2)
})

t.test('a 429 with Retry-After is waited out, a longer one is not', { timeout: 30_000 }, async (t) => {
  // The broker's own 429s carry windows of up to 60 s, and the upstream's its reset; a
  // proxy in front of the broker answers the contract's 429 with Retry-After: 1 once instead.
  t.test('Retry-After: 1 → waits about a second, then gets the token', async (t) => {
    const { broker, page, jwt } = await setup(t)
    const proxy = await startRefusingProxy(t, broker.url, { retryAfter: 1 })
    await createClient(page, { url: `${proxy.url}/v1/token`, jwt })
    const result = await page.evaluate(async () => {
      const client = (globalThis as any).client
      const started = performance.now()
      const token = await client.getToken()
      return { waitedMs: performance.now() - started, token: token.token as string }
    })
    t.type(result.token, 'string')
    t.ok(result.waitedMs >= 950, `waited ${Math.round(result.waitedMs)} ms, at least the Retry-After`)
    t.ok(result.waitedMs < 5000, 'and not much longer')
    t.equal(proxy.refused(), 1)
    t.equal(proxy.tokenPosts(), 2, 'one refused request, one retry')
    t.equal(broker.tokenPosts(), 1, 'the retry reached the broker')
  })

  t.test('Retry-After: 120 (over maxRetryWaitSeconds 30) → rejects at once with the contract code', async (t) => {
    const { broker, page, jwt } = await setup(t)
    const proxy = await startRefusingProxy(t, broker.url, { retryAfter: 120 })
    await createClient(page, { url: `${proxy.url}/v1/token`, jwt })
    const result = await page.evaluate(async () => {
      const client = (globalThis as any).client
      const started = performance.now()
      try {
        await client.getToken()
        return { outcome: 'resolved', waitedMs: performance.now() - started }
      } catch (err) {
        const e = err as { code: string; status: number; retryAfter: number }
        return { outcome: e.code, status: e.status, retryAfter: e.retryAfter, waitedMs: performance.now() - started }
      }
    })
    t.match(result, { outcome: 'RATE_LIMITED', status: 429, retryAfter: 120 })
    t.ok(result.waitedMs < 1000, 'no wait')
    t.equal(proxy.tokenPosts(), 1)
    t.equal(broker.tokenPosts(), 0)
  })
})

t.test('without url the client asks the broker that served /client.js; a bare origin means its /v1/token', { timeout: 30_000 }, async (t) => {
  const { broker, page, jwt, app } = await setup(t)
  const result = await page.evaluate(async (jwt) => {
    const { createTokenClient } = (globalThis as any).tiktools
    const served = await createTokenClient({ credentials: () => jwt, creators: ['a1'] }).getToken()
    return { token: served.token as string, page: (globalThis as any).location.origin as string }
  }, jwt)
  t.type(result.token, 'string')
  t.equal(result.page, app.origin, 'the page is on another origin than the broker')
  t.equal(broker.tokenPosts(), 1, 'the token request went to the broker that served the module')
  t.match(broker.seen.find((r) => r.method === 'POST'), { url: '/v1/token', origin: app.origin })

  const bare = await page.evaluate(async ({ jwt, origin }) => {
    const { createTokenClient } = (globalThis as any).tiktools
    return (await createTokenClient({ url: origin, credentials: () => jwt, creators: ['a1'] }).getToken()).token as string
  }, { jwt, origin: broker.url })
  t.type(bare, 'string')
  t.equal(broker.tokenPosts(), 2)
})
