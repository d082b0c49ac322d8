/**
 * Memory per cached token, through the app's own token store: run with
 * `node --expose-gc --import tsx bench/memory.ts`. Fills the store the app
 * built with tokens shaped like tik.tools' (real HS256 JWTs, flat strings as
 * JSON.parse leaves them), after a warm-up fill, and prints one JSON line:
 * live heap after a full GC and RSS, per token and per 100,000 tokens.
 */
import { Writable } from 'node:stream'
import { buildApp } from '../src/app.js'
import { grantKey, type TokenKey } from '../src/cache/token-store.js'
import { createLogger } from '../src/logger.js'
import { mintSimulatorToken } from '../src/simulator/token.js'
import { benchConfig } from './fixtures.js'

export interface MemoryResult {
  tokens: number
  held: number
  heapPerToken: number
  rssPerToken: number
}

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error('run with node --expose-gc')
const tokens = Number(process.env.BENCH_MEMORY_TOKENS ?? 100_000)
const warmup = Math.ceil(tokens / 5)

const quiet = new Writable({ write: (_c, _e, cb) => cb() })
const app = await buildApp(benchConfig('http://127.0.0.1:9', 'http://127.0.0.1:9/jwks.json'), { logger: createLogger('silent', quiet) })
await app.ready()
const store = app.broker.store
const grant = grantKey(['streamer1'], 1, 600)
const keyOf = (i: number): TokenKey => ({ tenantId: 'hs', subject: `user-${String(i).padStart(7, '0')}`, grant })
const secret = 'bench-simulator-secret-0123456789abcdef'

async function fill(from: number, to: number): Promise<void> {
  const now = Date.now()
  for (let i = from; i < to; i++) {
    const signed = await mintSimulatorToken({ expire_after: 600, max_websockets: 1, allowed_creators: ['streamer1'] }, secret, now)
    // A token read from the upstream's JSON answer is a flat string, not the concatenation jose built.
    const token = JSON.parse(JSON.stringify(signed)) as string
    const iat = Math.floor(now / 1000)
    await store.set(keyOf(i), { token, expiresAt: iat + 600, issuedAt: iat, expireAfter: 600 }, 540_000)
  }
}

function settled(): { heap: number; rss: number } {
  for (let i = 0; i < 4; i++) gc?.()
  const m = process.memoryUsage()
  return { heap: m.heapUsed, rss: m.rss }
}

await fill(0, warmup)
const before = settled()
await fill(warmup, warmup + tokens)
const after = settled()
let held = 0
for (let i = warmup; i < warmup + tokens; i++) if ((await store.get(keyOf(i))) !== undefined) held += 1
const result: MemoryResult = {
  tokens,
  held,
  heapPerToken: (after.heap - before.heap) / tokens,
  rssPerToken: (after.rss - before.rss) / tokens,
}
process.stdout.write(`${JSON.stringify(result)}\n`)
await app.close()
