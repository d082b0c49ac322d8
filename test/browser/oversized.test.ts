import t from 'tap'
import { acme } from '../helpers/broker.js'
import { launchBrowser, newPage, openAppPage } from './chromium.js'
import { ensureClientBuilt, startAppPage, startBroker } from './servers.js'

await ensureClientBuilt()
const browser = await launchBrowser(t)

/**
 * In the page: one `getToken()` and one `connect()` with a credential of
 * `size` bytes. Answers the error code each saw, and whether the connection
 * gave up by itself (a final error) within the time allowed.
 */
async function tryInPage({ url, size }: { url: string; size: number }) {
  const { createTokenClient } = (globalThis as any).tiktools
  const credential = 'A'.repeat(size)
  const client = createTokenClient({ url, credentials: () => credential, creators: ['a1'] })
  let getToken = 'resolved'
  try {
    await client.getToken()
  } catch (err) {
    getToken = (err as { code: string }).code
  }
  const errors: string[] = []
  const ended = await new Promise<boolean>((resolve) => {
    const live = client.connect('a1', { onError: (err: { code?: string }) => errors.push(err.code ?? 'ws') })
    // A final error ends the connection: it schedules nothing and holds no socket.
    setTimeout(() => resolve(live.socket === null && errors.length === 1), 1500)
  })
  return { getToken, connect: errors, ended }
}

t.test('from a real page: an oversized credential is a final 401, over-large headers a final 431, never a retry loop', { timeout: 60_000 }, async (t) => {
  const app = await startAppPage(t)
  const broker = await startBroker(t, { tenants: [acme({ cors: { origins: [app.origin] } })] })
  const page = await newPage(t, browser)
  t.equal(await openAppPage(page, app.url, broker.url), 'ok')
  const url = `${broker.url}/v1/token`

  const big = await page.evaluate(tryInPage, { url, size: 20 * 1024 })
  t.same(big, { getToken: 'UNAUTHENTICATED', connect: ['UNAUTHENTICATED'], ended: true }, '20 KiB: the browser reads the 401')
  const posts = broker.tokenPosts()
  t.equal(posts, 2, 'one POST each, no retry')

  const huge = await page.evaluate(tryInPage, { url, size: 40 * 1024 })
  t.same(huge, { getToken: 'HEADERS_TOO_LARGE', connect: ['HEADERS_TOO_LARGE'], ended: true }, '40 KiB: the browser reads the 431, not a network error')
  t.equal(broker.sim.stats.requests, 0, 'no upstream mint')
})
