import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { LedgerState } from '../upstream/ledger.js'

/** Where a served token came from. */
export type CacheResult = 'hit' | 'miss' | 'coalesced'
/** Which limit refused a request. */
export type RejectionScope = 'subject' | 'tenant' | 'upstream' | 'upstream_share'

/**
 * Increments of a counter labelled by tenant and one more label, kept as plain
 * numbers until the counter is read (a scrape, {@link createMetrics}' `usage`):
 * prom-client's `Counter#inc` hashes its label set on every call, and the token
 * route counts twice per request. Its keys are the counter's own label values
 * (tenant ids, fixed outcome names): no more of them than the counter has series.
 */
class PendingCounts {
  readonly #byTenant = new Map<string, Map<string, number>>()

  add(tenant: string, value: string): void {
    let counts = this.#byTenant.get(tenant)
    if (counts === undefined) this.#byTenant.set(tenant, (counts = new Map()))
    counts.set(value, (counts.get(value) ?? 0) + 1)
  }

  /** Hands every pending count to `inc` and starts again from zero. */
  drain(inc: (tenant: string, value: string, n: number) => void): void {
    for (const [tenant, counts] of this.#byTenant) {
      for (const [value, n] of counts) {
        if (n === 0) continue
        inc(tenant, value, n)
        counts.set(value, 0)
      }
    }
  }
}

/**
 * prom-client's default Node.js metrics, prefixed `tiktools_broker_`, less the three gauges
 * `nodejs_active_{handles,requests,resources}_total`: a `_total` suffix is for counters only
 * (Prometheus naming practice), and `promtool check metrics` refuses the exposition for it.
 * The same counts stay served, by type, as `nodejs_active_{handles,requests,resources}`.
 */
function defaultMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry, prefix: 'tiktools_broker_' })
  for (const kind of ['handles', 'requests', 'resources']) registry.removeSingleMetric(`tiktools_broker_nodejs_active_${kind}_total`)
}

/**
 * The broker's Prometheus metrics (`tiktools_broker_*`), one registry per app
 * so that tests can build several. Labels are tenant ids and outcomes, never
 * subjects or tokens.
 */
export function createMetrics(options: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry()
  const registers = [registry]
  if (options.defaultMetrics !== false) defaultMetrics(registry)
  // Counted on every token request: kept as plain numbers, handed to prom-client when read.
  const requestCounts = new PendingCounts()
  const cacheCounts = new PendingCounts()
  const requests = new Counter({
    name: 'tiktools_broker_token_requests_total',
    help: 'Token requests by tenant and outcome (ok or the error code).',
    labelNames: ['tenant', 'outcome'] as const,
    registers,
    collect() {
      requestCounts.drain((tenant, outcome, n) => this.inc({ tenant, outcome }, n))
    },
  })
  const cache = new Counter({
    name: 'tiktools_broker_cache_total',
    help: 'Token cache results: hit, miss (led to a mint) or coalesced (waited for a concurrent mint).',
    labelNames: ['tenant', 'result'] as const,
    registers,
    collect() {
      cacheCounts.drain((tenant, result, n) => this.inc({ tenant, result }, n))
    },
  })
  const mints = new Counter({
    name: 'tiktools_broker_upstream_mints_total',
    help: 'Calls to tik.tools POST /authentication/jwt by tenant and HTTP status (or timeout/network).',
    labelNames: ['tenant', 'status'] as const,
    registers,
  })
  const mintDuration = new Histogram({
    name: 'tiktools_broker_upstream_mint_duration_seconds',
    help: 'Latency of tik.tools mint calls.',
    labelNames: ['status'] as const,
    buckets: [0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 2, 5, 10],
    registers,
  })
  const quota = {
    limit: new Gauge({ name: 'tiktools_broker_upstream_quota_limit', help: 'Last observed X-RateLimit-Limit.', registers }),
    remaining: new Gauge({ name: 'tiktools_broker_upstream_quota_remaining', help: 'Last observed X-RateLimit-Remaining.', registers }),
    reset: new Gauge({ name: 'tiktools_broker_upstream_quota_reset_timestamp_seconds', help: 'Last observed X-RateLimit-Reset (unix seconds).', registers }),
  }
  const ledgerRefusals = new Counter({
    name: 'tiktools_broker_ledger_refusals_total',
    help: 'Cache misses answered UPSTREAM_RATE_LIMITED by the quota ledger without calling tik.tools: blocked (a block in force) or spent (no call left in the window).',
    labelNames: ['reason'] as const,
    registers,
  })
  let ledgerView: () => { blockSeconds: number; inFlight: number } = () => ({ blockSeconds: 0, inFlight: 0 })
  new Gauge({
    name: 'tiktools_broker_ledger_block_seconds',
    help: 'Seconds left of the upstream block in force (after a 429 or Remaining: 0); 0 when none.',
    registers,
    collect() {
      this.set(ledgerView().blockSeconds)
    },
  })
  new Gauge({
    name: 'tiktools_broker_ledger_in_flight',
    help: 'Mint reservations this replica holds: calls on their way to tik.tools.',
    registers,
    collect() {
      this.set(ledgerView().inFlight)
    },
  })
  const rejections = new Counter({
    name: 'tiktools_broker_rate_limit_rejections_total',
    help: 'Requests refused by a limit: subject, tenant, upstream (quota spent) or upstream_share (tenant mint share).',
    labelNames: ['tenant', 'scope'] as const,
    registers,
  })

  // Read at scrape time from the state they describe, so no hot path changes.
  let circuitOpen: () => boolean = () => false
  new Gauge({
    name: 'tiktools_broker_upstream_circuit_open',
    help: 'Whether the circuit breaker keeps calls from tik.tools: 1 while open or half-open (awaiting a good trial call), 0 when closed.',
    registers,
    collect() {
      this.set(circuitOpen() ? 1 : 0)
    },
  })
  let redisReady: (() => Promise<boolean>) | undefined
  /** Registered only once Redis is configured: without Redis there is nothing to be ready, and a 0 would alert. */
  const redisGauge = new Gauge({
    name: 'tiktools_broker_redis_ready',
    help: 'Whether the shared Redis answers and accepts writes, as GET /readyz checks it (1/0); only present when Redis is configured.',
    registers: [],
    async collect() {
      this.set(redisReady !== undefined && (await redisReady()) ? 1 : 0)
    },
  })

  /** Sums of one counter's values for a tenant, keyed by its other label. */
  const byLabel = async (counter: Counter<string>, tenant: string, label: string): Promise<Record<string, number>> => {
    const out: Record<string, number> = {}
    for (const v of (await counter.get()).values) {
      if (v.labels.tenant !== tenant) continue
      const key = String(v.labels[label])
      out[key] = (out[key] ?? 0) + v.value
    }
    return out
  }

  return {
    registry,
    /** What this replica counted for a tenant since it started. */
    async usage(tenant: string) {
      const [outcomes, cacheResults, mintStatuses, rejected] = await Promise.all([
        byLabel(requests, tenant, 'outcome'),
        byLabel(cache, tenant, 'result'),
        byLabel(mints, tenant, 'status'),
        byLabel(rejections, tenant, 'scope'),
      ])
      const minted = mintStatuses['200'] ?? 0
      const calls = Object.values(mintStatuses).reduce((a, b) => a + b, 0)
      return {
        requests: outcomes,
        cache: { hits: cacheResults.hit ?? 0, misses: cacheResults.miss ?? 0, coalesced: cacheResults.coalesced ?? 0 },
        upstream: { mints: minted, failures: calls - minted, byStatus: mintStatuses },
        rejections: {
          subject: rejected.subject ?? 0,
          tenant: rejected.tenant ?? 0,
          upstream: rejected.upstream ?? 0,
          upstream_share: rejected.upstream_share ?? 0,
        },
      }
    },
    request(tenant: string, outcome: string): void {
      requestCounts.add(tenant, outcome)
    },
    cache(tenant: string, result: CacheResult): void {
      cacheCounts.add(tenant, result)
    },
    mint(tenant: string, status: number | string, seconds: number): void {
      const label = String(status)
      mints.inc({ tenant, status: label })
      mintDuration.observe({ status: label }, seconds)
    },
    /** Where the ledger gauges read from at scrape time. */
    watchLedger(view: () => { blockSeconds: number; inFlight: number }): void {
      ledgerView = view
    },
    /** A miss the quota ledger refused without calling tik.tools. */
    ledgerRefusal(reason: 'blocked' | 'spent'): void {
      ledgerRefusals.inc({ reason })
    },
    quota(state: LedgerState | undefined): void {
      if (state?.limit != null) quota.limit.set(state.limit)
      if (state?.remaining != null) quota.remaining.set(state.remaining)
      if (state?.reset != null) quota.reset.set(state.reset)
    },
    rejection(tenant: string, scope: RejectionScope): void {
      rejections.inc({ tenant, scope })
    },
    /** Where the circuit gauge reads the breaker's state at scrape time. */
    watchCircuit(open: () => boolean): void {
      circuitOpen = open
    },
    /** Where the Redis gauge reads readiness at scrape time; only called when Redis is configured. */
    watchRedis(ready: () => Promise<boolean>): void {
      redisReady = ready
      if (registry.getSingleMetric('tiktools_broker_redis_ready') === undefined) registry.registerMetric(redisGauge)
    },
  }
}

export type Metrics = ReturnType<typeof createMetrics>
