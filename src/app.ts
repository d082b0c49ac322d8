import cors from '@fastify/cors'
import { EXPOSED_HEADERS } from './http/cors.js'
import { emptyOrUnsupported, parseJson } from './http/json-body.js'
import { MemoryOverrideStore, type OverrideStore } from './admin/overrides.js'
import adminRoutes from './admin/routes.js'
import Fastify, { LogController, type FastifyInstance } from 'fastify'
import type { FastifyBaseLogger, FastifyServerOptions } from 'fastify'
import { createServer, type RequestListener, type Server } from 'node:http'
import { MemoryTokenStore } from './cache/memory-store.js'
import type { TokenStore } from './cache/token-store.js'
import type { Config } from './config/index.js'
import type { Counters } from './counters/counters.js'
import { MemoryCounters } from './counters/memory-counters.js'
import { createLogger, lazyChildLogger } from './logger.js'
import { MemoryLedger, type QuotaLedger } from './upstream/quota-ledger.js'
import { createMetrics, type Metrics } from './metrics/metrics.js'
import errorHandler from './plugins/error-handler.js'
import gracefulClose, { shutdownSignal, type Shutdown } from './plugins/graceful-close.js'
import limits from './plugins/limits.js'
import { clientErrorHandler, frameworkErrors, MAX_HEADER_BYTES, refuseInContract, requireHost } from './plugins/connection-errors.js'
import requestLog from './plugins/request-log.js'
import services from './plugins/services.js'
import clientJs from './routes/client-js.js'
import metricsRoute from './metrics/route.js'
import docs from './routes/docs.js'
import health, { type ReadinessCheck } from './routes/health.js'
import tokenRoute from './routes/token.js'

/** What a caller (the server, a test, a benchmark) may provide instead of the defaults. */
export interface AppDeps {
  logger?: FastifyBaseLogger
  store?: TokenStore
  counters?: Counters
  /** The tik.tools quota ledger (memory by default; the state's shared one with Redis). */
  ledger?: QuotaLedger
  /** A @fastify/rate-limit store class for the broker's own limits. */
  rateLimitStore?: unknown
  metrics?: Metrics
  /** Where operators' tenant patches are shared (memory by default). */
  overrides?: OverrideStore
  now?: () => number
  readiness?: ReadinessCheck[]
  /** The environment a tenants-file reload interpolates `${VAR}` from. */
  env?: NodeJS.ProcessEnv
}

/**
 * How long a shutdown may take: the longest request (the request timeout) plus
 * closing the stores. A supervisor's grace period (Kubernetes'
 * terminationGracePeriodSeconds, compose's stop_grace_period) must be longer.
 */
export function shutdownGraceMs(upstreamTimeoutMs: number): number {
  return upstreamTimeoutMs * 2 + 7000
}

/** Largest request body accepted (the contract's 16 KiB). */
export const BODY_LIMIT = 16 * 1024

export { EXPOSED_HEADERS } from './http/cors.js'

/**
 * The broker's HTTP server, as Fastify would make it (its keep-alive, request and
 * connection timeouts), and:
 * - headers at most {@link MAX_HEADER_BYTES} in all, and all of them within 10 s; Node looks
 *   for connections past that every `connectionsCheckingInterval`: 30 s by default, which
 *   answered the 408 after up to 40 s, each second keeps it within 11 s;
 * - responses that close their connection once shutdown began (`shutdown.ServerResponse`);
 * - Node's own refusals in the contract's body ({@link requireHost}, which makes Node's own
 *   check, switched off here; {@link refuseInContract}).
 */
function createHttpServer(handler: RequestListener, options: FastifyServerOptions, shutdown: Shutdown): Server {
  const server = createServer(
    { maxHeaderSize: MAX_HEADER_BYTES, ServerResponse: shutdown.ServerResponse, requireHostHeader: false, connectionsCheckingInterval: 1000 },
    requireHost(handler),
  )
  server.keepAliveTimeout = options.keepAliveTimeout ?? 72_000
  server.requestTimeout = options.requestTimeout ?? 0
  server.setTimeout(options.connectionTimeout ?? 0)
  server.headersTimeout = 10_000
  refuseInContract(server)
  return server
}

/**
 * The composition root: builds the broker as a Fastify instance, ready to
 * `listen` or `inject`. Reads no environment; everything comes in `config` and `deps`.
 */
export async function buildApp(config: Config, deps: AppDeps = {}): Promise<FastifyInstance> {
  // Answers written once shutdown began close their connections (plugins/graceful-close.ts).
  const shutdown = shutdownSignal()
  const app = Fastify({
    loggerInstance: deps.logger ?? createLogger(config.logLevel),
    logController: new LogController({ disableRequestLogging: true }),
    // A request's own logger is made only when something logs through it (the request line does not).
    childLoggerFactory: lazyChildLogger,
    bodyLimit: BODY_LIMIT,
    // Long enough for an upstream call plus a wait on another replica's mint.
    requestTimeout: config.upstream.timeoutMs * 2 + 5000,
    keepAliveTimeout: 65_000,
    // Fastify's closing 503 has a body of its own, not the contract's: a request routed after shutdown began
    // (a keep-alive client's next one, before idle connections are closed) is served, with Connection: close.
    return503OnClosing: false,
    routerOptions: { maxParamLength: 300 },
    // The one HTTP server, made here so that every setting below holds for it (Fastify makes no second server for
    // another address of a host name when it is given one, which would miss them).
    serverFactory: (handler, options) => createHttpServer(handler, options, shutdown),
    // Refusals that happen before any route or hook still answer in the contract's body.
    frameworkErrors,
    clientErrorHandler,
  })

  // Only JSON is accepted (http/json-body.ts): a body of every other type (text/plain included) is a 415; no body at
  // all is `{}` whatever the type.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: BODY_LIMIT }, parseJson)
  // JSON by its structured syntax suffix (RFC 6839 §3.1): application/vnd.api+json and its kind.
  app.addContentTypeParser(/^application\/[\w.!#$&^-]+\+json\s*(;.*)?$/i, { parseAs: 'string', bodyLimit: BODY_LIMIT }, parseJson)
  app.addContentTypeParser('*', emptyOrUnsupported)

  await app.register(errorHandler)
  await app.register(gracefulClose, { shutdown })
  await app.register(requestLog)
  await app.register(services, {
    config,
    store: deps.store ?? new MemoryTokenStore(),
    counters: deps.counters ?? new MemoryCounters(deps.now),
    ledger: deps.ledger ?? new MemoryLedger(),
    metrics: deps.metrics ?? createMetrics(),
    overrides: deps.overrides ?? new MemoryOverrideStore(),
    now: deps.now ?? Date.now,
  })
  await app.register(cors, {
    // A tenant's origin may read the public GET routes' answers (not /admin/: its routes opt out). The token route
    // does the same itself, in the hook that authenticates (routes/token.ts): one pass, no plugin hook.
    origin: (origin, cb) => cb(null, origin !== undefined && app.broker.tenants.origins.has(origin) ? origin : false),
    exposedHeaders: [...EXPOSED_HEADERS],
    // No preflight is the plugin's: it would answer one for any path, an unknown or an /admin/ one included. The
    // token route answers its own (routes/token.ts); any other OPTIONS is the plain 404.
    preflight: false,
  })
  // The readiness checks are Redis's (main.ts passes them only when Redis is configured): the gauge mirrors /readyz.
  const redisChecks = deps.readiness ?? []
  if (redisChecks.length > 0) {
    app.broker.metrics.watchRedis(async () => (await Promise.all(redisChecks.map((c) => c().catch(() => 'failed')))).every((r) => r === undefined))
  }
  await app.register(limits, { store: deps.rateLimitStore })
  await app.register(health, { checks: deps.readiness ?? [] })
  await app.register(docs)
  await app.register(metricsRoute)
  await app.register(tokenRoute)
  await app.register(clientJs)
  // Without ADMIN_TOKEN no admin route exists: every /admin/ path is the plain 404.
  if (config.adminToken !== undefined) await app.register(adminRoutes, { adminToken: config.adminToken, env: deps.env ?? {} })
  return app
}
