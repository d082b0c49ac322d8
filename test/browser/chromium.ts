import { existsSync } from 'node:fs'
import { chromium, type Browser, type Page } from 'playwright-core'
import type { Test } from 'tap'

/** The Debian package's binary; `CHROMIUM_PATH` points elsewhere on a machine without it. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/** Headless, sandbox-less (containers), and nothing that would reach beyond loopback. */
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-quic',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
]

/**
 * One headless Chromium for a test file, closed at its teardown. A missing
 * binary fails the file with a message saying so: these tests never skip.
 */
export async function launchBrowser(t: Test): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    const message = `Chromium is not installed at ${CHROMIUM}: the browser tests need a real browser ` +
      '(apt-get install -y chromium, or set CHROMIUM_PATH). They fail rather than skip.'
    t.fail(message)
    throw new Error(message)
  }
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, timeout: 20_000 })
  t.teardown(() => browser.close())
  return browser
}

/** A page in a fresh context (no shared cache or cookies), closed at teardown; uncaught page errors fail the test. */
export async function newPage(t: Test, browser: Browser): Promise<Page> {
  const context = await browser.newContext()
  t.teardown(() => context.close())
  const page = await context.newPage()
  page.setDefaultTimeout(15_000)
  page.on('pageerror', (err) => t.fail(`uncaught error in the page: ${err.message}`))
  return page
}

/**
 * Opens the app page of {@link startAppPage} for a broker and waits for its
 * `import` of the broker's `/client.js`; answers `'ok'` or the import's error.
 */
export async function openAppPage(page: Page, appUrl: string, brokerUrl: string): Promise<string> {
  await page.goto(`${appUrl}/?broker=${encodeURIComponent(brokerUrl)}`)
  const handle = await page.waitForFunction(() => (globalThis as { clientLoaded?: string }).clientLoaded)
  return String(await handle.jsonValue())
}
