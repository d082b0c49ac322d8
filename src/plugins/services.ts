import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { OverrideSync } from '../admin/override-sync.js'
import type { OverrideStore } from '../admin/overrides.js'
import { createAuditLog, type AuditLog } from '../audit/audit-log.js'
import { TokenCache } from '../cache/token-cache.js'
import type { TokenStore } from '../cache/token-store.js'
import type { Config } from '../config/index.js'
import { TenantRegistry } from '../config/registry.js'
import type { Counters } from '../counters/counters.js'
import type { Metrics } from '../metrics/metrics.js'
import { CircuitBreaker } from '../upstream/circuit-breaker.js'
import { UpstreamClient } from '../upstream/client.js'
import { Minter } from '../mint/minter.js'
import type { QuotaLedger } from '../upstream/quota-ledger.js'
import { UpstreamQuota } from '../upstream/quota.js'

/** The broker's services, built once per app and shared by every route. */
export interface Broker {
  config: Config
  tenants: TenantRegistry
  tokens: TokenCache
  quota: UpstreamQuota
  minter: Minter
  store: TokenStore
  counters: Counters
  metrics: Metrics
  upstream: UpstreamClient
  breaker: CircuitBreaker
  audit: AuditLog
  overrides: OverrideStore
  overrideSync: OverrideSync
  now: () => number
}

declare module 'fastify' {
  interface FastifyInstance {
    broker: Broker
  }
}

export interface ServicesOptions {
  config: Config
  store: TokenStore
  counters: Counters
  ledger: QuotaLedger
  metrics: Metrics
  overrides: OverrideStore
  now: () => number
}

async function services(app: FastifyInstance, opts: ServicesOptions): Promise<void> {
  const { config, store, counters, ledger, metrics, overrides, now } = opts
  const upstream = new UpstreamClient({ ...config.upstream, now })
  const quota = new UpstreamQuota({ ledger, now, onRefusal: (reason) => metrics.ledgerRefusal(reason) })
  metrics.watchLedger(() => ({ blockSeconds: quota.blockSeconds, inFlight: quota.inFlight }))
  const breaker = new CircuitBreaker({ now })
  metrics.watchCircuit(() => breaker.state !== 'closed')
  const tenants = new TenantRegistry(config.tenants, { jwksTimeoutMs: config.upstream.timeoutMs, keySets: { now, log: app.log } })
  const audit = createAuditLog(app.log, { subjects: config.auditSubjects ?? 'hashed', hashKey: config.upstream.apiKey })
  const minter = new Minter({
    upstream,
    quota,
    breaker,
    counters,
    metrics,
    log: app.log,
    reservationTtlMs: config.upstream.timeoutMs + 2000,
    audit,
    now,
  })
  const tokens = new TokenCache({ store, minter, log: app.log, upstreamTimeoutMs: config.upstream.timeoutMs, now })
  // Operators' run-time patches: adopted before the first request, then followed every second.
  const overrideSync = new OverrideSync(tenants, overrides, app.log)
  await overrideSync.tick()
  overrideSync.start()
  app.decorate('broker', { config, tenants, tokens, quota, minter, store, counters, metrics, upstream, breaker, audit, overrides, overrideSync, now })
  app.addHook('onClose', async () => {
    overrideSync.stop()
    await Promise.allSettled([upstream.close(), store.close(), counters.close(), ledger.close(), overrides.close()])
  })
}

export default fp(services, { name: 'broker-services', fastify: '5.x' })
