import closeWithGrace from 'close-with-grace'
import { reloadTenants } from './admin/reload.js'
import { buildApp, shutdownGraceMs } from './app.js'
import { ConfigError, loadConfig } from './config/index.js'
import { describeRedisTarget, redisTargetOf } from './config/redis-target.js'
import { createLogger } from './logger.js'
import { createState } from './state/index.js'

/**
 * The server process: the only place that reads `process.env`. A bad
 * configuration ends it at once with one message naming the field.
 */
async function main(): Promise<void> {
  let config
  try {
    config = await loadConfig(process.env)
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`tiktools-broker: invalid configuration\n${err.issues.map((i) => `  ${i}`).join('\n')}\n`)
      process.exit(1)
    }
    throw err
  }
  const logger = createLogger(config.logLevel)
  for (const warning of config.warnings ?? []) logger.warn(warning)
  const state = await createState(config, logger)
  const app = await buildApp(config, {
    logger,
    store: state.store,
    counters: state.counters,
    ledger: state.ledger,
    rateLimitStore: state.rateLimitStore,
    overrides: state.overrides,
    readiness: state.readiness,
    env: process.env,
  })
  app.addHook('onClose', async () => state.close())

  // SIGHUP is ours: it reloads the tenants file instead of shutting down.
  // Long enough for the longest request (app.ts requestTimeout) to finish before the process gives up.
  closeWithGrace({ delay: shutdownGraceMs(config.upstream.timeoutMs), logger, skip: ['SIGHUP'] }, async ({ signal, err }) => {
    if (err !== undefined) logger.error({ err }, 'shutting down after an error')
    else logger.info({ signal }, 'shutting down')
    await app.close()
  })

  process.on('SIGHUP', () => {
    reloadTenants(app, process.env, 'SIGHUP').then(
      (tenants) => logger.info({ tenants }, 'tenants reloaded (SIGHUP)'),
      (err: Error) => logger.error({ reason: err.message }, 'tenants reload refused; running config kept'),
    )
  })

  try {
    await app.listen({ host: config.server.host, port: config.server.port })
  } catch (err) {
    // A HOST that does not resolve or is not this machine's, a PORT taken or not ours to use: one line naming both.
    const { code, message } = err as NodeJS.ErrnoException
    process.stderr.write(`tiktools-broker: cannot listen on HOST=${config.server.host} PORT=${config.server.port}: ${code ?? message}${code === undefined ? '' : ` (${message})`}\n`)
    await app.close().catch(() => {})
    process.exit(1)
  }
  const redis = redisTargetOf(config)
  logger.info(
    {
      tenants: config.tenants.map((t) => t.id),
      upstream: config.upstream.url,
      store: redis === undefined ? 'memory' : 'redis',
      ...(redis !== undefined && { redis: describeRedisTarget(redis) }),
    },
    'tiktools-broker ready',
  )
}

await main()
