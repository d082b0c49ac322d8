import type { SimulatorOptions } from './options.js'

/**
 * Reads the standalone simulator's options: SIM_HOST (0.0.0.0), SIM_PORT (8090),
 * SIM_API_KEYS (comma list), SIM_PER_MINUTE, SIM_PER_DAY, SIM_SECRET.
 *
 * @throws {Error} naming the variable that is not a non-negative integer
 */
export function optionsFromEnv(env: NodeJS.ProcessEnv): SimulatorOptions {
  const keys = env.SIM_API_KEYS?.split(',').map((k) => k.trim()).filter((k) => k.length > 0)
  return {
    host: env.SIM_HOST || '0.0.0.0',
    port: integerFromEnv(env, 'SIM_PORT') ?? 8090,
    apiKeys: keys && keys.length > 0 ? keys : undefined,
    perMinute: integerFromEnv(env, 'SIM_PER_MINUTE'),
    perDay: integerFromEnv(env, 'SIM_PER_DAY'),
    secret: env.SIM_SECRET || undefined,
  }
}

function integerFromEnv(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = env[name]?.trim()
  if (raw === undefined || raw === '') return undefined
  if (!/^\d+$/.test(raw)) throw new Error(`${name} must be a non-negative integer, got "${raw}"`)
  return Number(raw)
}
