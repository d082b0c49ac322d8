import t from 'tap'
import { EMPTY_LEDGER, windowOf, type LedgerState } from '../../src/upstream/ledger.js'
import { MemoryLedger, type QuotaLedger } from '../../src/upstream/quota-ledger.js'
import { UpstreamQuota } from '../../src/upstream/quota.js'

/** A shared ledger as another replica keeps it: `state` is what Redis holds; reads are counted. */
function sharedLedger(state: LedgerState) {
  const ledger = {
    state,
    reads: 0,
    readAlongKey: 'tkb:{quota:test}',
    async reserve() {
      throw new Error('not used')
    },
    async record() {
      throw new Error('not used')
    },
    async read() {
      ledger.reads += 1
      return ledger.state
    },
    async close() {},
  }
  return ledger satisfies QuotaLedger & { reads: number; state: LedgerState }
}

const window = (remaining: number, reset = 1_800_000_060): LedgerState => ({ ...EMPTY_LEDGER, limit: 60, remaining, reset })

t.test('a hit without its window read along waits for a ledger read once a second, and answers the state last read between', async (t) => {
  let now = 1_800_000_000_000
  const ledger = sharedLedger(window(50))
  const quota = new UpstreamQuota({ ledger, now: () => now })
  const first = quota.headersForHit()
  t.ok(first instanceof Promise, 'nothing read yet: the answer waits for the read')
  t.same(await first, { 'x-ratelimit-limit': 60, 'x-ratelimit-remaining': 50, 'x-ratelimit-reset': 1_800_000_060 })
  ledger.state = window(7)
  now += 999
  t.same(quota.headersForHit(), { 'x-ratelimit-limit': 60, 'x-ratelimit-remaining': 50, 'x-ratelimit-reset': 1_800_000_060 }, 'within the second: the state last read, at once')
  t.equal(ledger.reads, 1)
  now += 1
  t.same(await quota.headersForHit(), { 'x-ratelimit-limit': 60, 'x-ratelimit-remaining': 7, 'x-ratelimit-reset': 1_800_000_060 }, 'a second on: read, and waited for')
  t.equal(ledger.reads, 2)
})

t.test("a hit whose window was read along answers at once; the whole ledger is still read once a second, for its blocks", async (t) => {
  let now = 1_800_000_000_000
  const ledger = sharedLedger({ ...window(7), blockedUntil: now + 30_000, blockSince: now - 1000 })
  const quota = new UpstreamQuota({ ledger, now: () => now })
  t.equal(quota.absorbAlong(['60', '7', '1800000060']), true)
  const headers = quota.headersForHit(true)
  t.notOk(headers instanceof Promise, 'not waited for')
  t.same(headers, { 'x-ratelimit-limit': 60, 'x-ratelimit-remaining': 7, 'x-ratelimit-reset': 1_800_000_060 })
  t.equal(ledger.reads, 1, 'the whole ledger is read all the same')
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(quota.blockSeconds, 30, 'and the block another replica saw is known here')
  now += 500
  quota.headersForHit(true)
  t.equal(ledger.reads, 1, 'at most once a second')
  t.equal(quota.absorbAlong(undefined), false, 'nothing read along: nothing to join')
})

t.test('window fields read along join the state: monotone, a newer window wins, text that is no number is no value', async (t) => {
  const quota = new UpstreamQuota({ ledger: sharedLedger(EMPTY_LEDGER), now: () => 1_800_000_000_000 })
  quota.absorbAlong(['60', '7', '1800000060'])
  quota.absorbAlong(['60', '9', '1800000060'])
  t.equal(quota.current.remaining, 7, 'within one window Remaining never goes back up')
  quota.absorbAlong(['60', '59', '1800000120'])
  t.same([quota.current.remaining, quota.current.reset], [59, 1_800_000_120], 'a newer window replaces it')
  quota.absorbAlong(['60', '1', '1800000060'])
  t.equal(quota.current.reset, 1_800_000_120, 'an older one never does')
  quota.absorbAlong(['x', 'NaN', '1e999'])
  t.same([quota.current.limit, quota.current.remaining, quota.current.reset], [60, 59, 1_800_000_120], 'garbage in the hash changes nothing')
  t.same(windowOf(['', null, 'abc']), EMPTY_LEDGER)
})

t.test('a ledger in this process is never read for a hit: it holds nothing this process did not see', async (t) => {
  const ledger = new MemoryLedger()
  let reads = 0
  const read = ledger.read.bind(ledger)
  ledger.read = (...args) => (reads++, read(...args))
  const quota = new UpstreamQuota({ ledger })
  t.notOk(quota.headersForHit() instanceof Promise)
  t.equal(reads, 0)
  t.equal(quota.readAlongKey, undefined)
})
