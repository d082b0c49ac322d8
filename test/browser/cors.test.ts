import t from 'tap'
import { acme, userJwt } from '../helpers/broker.js'
import { launchBrowser, newPage, openAppPage } from './chromium.js'
import { ensureClientBuilt, startAppPage, startBroker } from './servers.js'

await ensureClientBuilt()
const browser = await launchBrowser(t)

/** What the page saw of `POST /v1/token`, or the error `fetch` rejected with. */
interface FetchResult {
  status?: number
  token?: string
  headers?: Record<string, string | null>
  error?: { name: string; message: string }
}

const READABLE = ['X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset', 'RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset']

/**
 * A plain `fetch` of a token, as an app would do without the client. Runs in
 * the page: it travels as source text, so it may use its arguments only.
 */
async function fetchTokenInPage({ url, jwt, names }: { url: string; jwt: string; names: string[] }): Promise<FetchResult> {
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { authorization: 'Bearer ' + jwt, 'content-type': 'application/json' },
      body: JSON.stringify({ allowed_creators: ['a1'] }),
    })
    const body = (await res.json()) as { data?: { token?: string } }
    return { status: res.status, token: body?.data?.token, headers: Object.fromEntries(names.map((n) => [n, res.headers.get(n)])) }
  } catch (err) {
    return { error: { name: (err as Error).name, message: (err as Error).message } }
  }
}

t.test('a page on an allowed origin gets a token and reads both sets of rate-limit headers', { timeout: 30_000 }, async (t) => {
  const app = await startAppPage(t)
  const broker = await startBroker(t, { tenants: [acme({ cors: { origins: [app.origin] } })] })
  const page = await newPage(t, browser)
  t.equal(await openAppPage(page, app.url, broker.url), 'ok')
  const jwt = await userJwt('user-1')

  const res = await page.evaluate(fetchTokenInPage, { url: `${broker.url}/v1/token`, jwt, names: READABLE })
  const headers = res.headers ?? {}
  t.equal(res.status, 200)
  t.type(res.token, 'string')
  // The simulator's quota is 60 a minute and the broker's default per-subject limit 60: one request spent each.
  t.same(headers, {
    'X-RateLimit-Limit': '60',
    'X-RateLimit-Remaining': '59',
    'X-RateLimit-Reset': headers['X-RateLimit-Reset'],
    'RateLimit-Limit': '60',
    'RateLimit-Remaining': '59',
    'RateLimit-Reset': headers['RateLimit-Reset'],
  })
  t.match(headers['X-RateLimit-Reset'], /^\d{10}$/, 'the upstream reset is unix seconds')
  t.match(headers['RateLimit-Reset'], /^\d+$/, 'the broker reset is seconds to go')
  t.same(broker.seen.find((r) => r.method === 'POST')?.origin, app.origin, 'the request came cross-origin from the app page')

  // The client module reads the same headers into `quota` (a cache hit: the upstream's last values, one more broker request).
  const quota = await page.evaluate(async ({ url, jwt }) => {
    const { createTokenClient } = (globalThis as any).tiktools
    const client = createTokenClient({ url, credentials: () => jwt, creators: ['a1'] })
    const token = await client.getToken()
    return { cached: token.cached as boolean, quota: client.quota }
  }, { url: `${broker.url}/v1/token`, jwt })
  t.equal(quota.cached, true)
  t.same(quota.quota.upstream, { limit: 60, remaining: 59, reset: Number(headers['X-RateLimit-Reset']) })
  t.match(quota.quota.broker, { limit: 60, remaining: 58, reset: Number })
})

t.test('a page on an origin the tenant does not allow is refused by the browser, yet imports /client.js', { timeout: 30_000 }, async (t) => {
  const app = await startAppPage(t)
  const broker = await startBroker(t, { tenants: [acme()] }) // allows https://app.acme.example only
  const page = await newPage(t, browser)
  t.equal(await openAppPage(page, app.url, broker.url), 'ok', '/client.js is public: any origin may import it (ACAO *)')
  t.equal(await page.evaluate(() => typeof (globalThis as any).tiktools.createTokenClient), 'function')
  const jwt = await userJwt('user-1')

  const res = await page.evaluate(fetchTokenInPage, { url: `${broker.url}/v1/token`, jwt, names: READABLE })
  t.equal(res.error?.name, 'TypeError', 'fetch rejects: the preflight got no Access-Control-Allow-Origin')
  t.notOk(res.status)

  const viaClient = await page.evaluate(async ({ url, jwt }) => {
    const { createTokenClient } = (globalThis as any).tiktools
    try {
      await createTokenClient({ url, credentials: () => jwt, creators: ['a1'] }).getToken()
      return 'resolved'
    } catch (err) {
      return (err as { code: string }).code
    }
  }, { url: `${broker.url}/v1/token`, jwt })
  t.equal(viaClient, 'NETWORK_ERROR', 'the client reports the refusal as a network error')

  t.equal(broker.tokenPosts(), 0, 'the browser never sent the POST')
  t.ok(broker.seen.some((r) => r.method === 'OPTIONS' && r.origin === app.origin), 'only the preflight reached the broker')
  t.equal(broker.sim.stats.requests, 0, 'no upstream mint')
})
