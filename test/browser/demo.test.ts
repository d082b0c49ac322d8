import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { DEMO_CREATORS, startDev } from '../../src/dev.js'
import { repoRoot } from '../client/build.js'
import { launchBrowser, newPage } from './chromium.js'
import { ensureClientBuilt } from './servers.js'

await ensureClientBuilt()
const browser = await launchBrowser(t)

const SCREENSHOT = join(repoRoot, 'test-artifacts', 'demo.png')

t.test('the demo page signs in, connects and shows the live feed, the countdown and both quotas', { timeout: 30_000 }, async (t) => {
  // What `npm run dev` runs, on free ports, with events every 200 ms.
  const dev = await startDev({ port: 0, simPort: 0, logLevel: 'silent', eventIntervalMs: 200 })
  t.teardown(() => dev.close())
  const page = await newPage(t, browser)
  const consoleErrors: string[] = []
  page.on('console', (msg) => { if (msg.type() === 'error') consoleErrors.push(msg.text()) })
  await page.goto(`${dev.url}/demo`)
  const text = (id: string) => page.getByTestId(id).innerText()

  t.same(await page.getByLabel('Creator').locator('option').allTextContents(), DEMO_CREATORS.map((c) => `@${c}`))
  t.ok(await page.getByRole('button', { name: 'Connect', exact: true }).isDisabled(), 'Connect waits for a sign-in')

  // A bad name shows the contract's code.
  await page.getByLabel('Your name').fill('<script>')
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByTestId('errors').locator('li[data-code="BAD_REQUEST"]').waitFor()

  await page.getByLabel('Your name').fill('ada')
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByText('Signed in as ada').waitFor()
  await page.getByLabel('Creator').selectOption('streamer1')
  await page.getByRole('button', { name: 'Connect', exact: true }).click()

  const feed = page.getByTestId('feed')
  await feed.locator('li[data-event="chat"]').first().waitFor()
  await feed.locator('li[data-event="like"]').first().waitFor()
  await feed.locator('li[data-event="member"]').first().waitFor() // all four kinds by now: chat, like, gift, member
  t.match(await text('status'), /^Live: @streamer1$/)
  t.match(await feed.locator('li[data-event="roomInfo"]').innerText(), /streamer1 is LIVE \(simulated\)/)
  const order = await feed.locator('li').evaluateAll((items) => items.map((li) => (li as any).dataset.event as string))
  t.same(order.slice(-2), ['roomInfo', 'system'], 'newest on top: the first entries sit at the bottom')

  // The token: a 120 s lifetime counting down, scoped to the creator.
  await page.waitForFunction(() => /^\d+ s$/.test((globalThis as any).document.querySelector('[data-testid="token-expiry"]').textContent))
  const left = Number((await text('token-expiry')).split(' ')[0])
  t.ok(left > 100 && left <= 120, `expires in ${left} s`)
  t.equal(await text('token-creators'), '@streamer1')
  t.equal(await text('token-renewals'), '0 times')
  // Both rate-limit header sets: the simulator's 60/min (one mint spent), the broker's 60/min per subject.
  t.equal(await text('quota-upstream-limit'), '60')
  t.equal(await text('quota-upstream-remaining'), '59')
  t.equal(await text('quota-broker-limit'), '60')
  t.match(await text('quota-broker-remaining'), /^5\d$/)
  t.equal(await page.getByTestId('errors').locator('li').count(), 1, 'only the bad sign-in is listed')

  await mkdir(join(repoRoot, 'test-artifacts'), { recursive: true })
  await page.screenshot({ path: SCREENSHOT, fullPage: true })

  await page.getByRole('button', { name: 'Disconnect' }).click()
  t.equal(await text('status'), 'Disconnected.')
  await feed.getByText('socket closed 1000').waitFor()
  // The browser saw the close handshake end; the simulator lets go of the socket on its side of it.
  for (let i = 0; i < 40 && dev.sim.stats.sockets > 0; i++) await new Promise((resolve) => setTimeout(resolve, 25))
  t.equal(dev.sim.stats.sockets, 0, 'the socket is closed')
  t.same(consoleErrors.filter((line) => !line.includes('400 (Bad Request)')), [], 'no console errors but the refused sign-in')
})
