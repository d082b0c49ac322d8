import { ConfigError, formatIssues } from './errors.js'
import { parseEnv, type Env } from './env.js'
import { redisTargetFromEnv, type RedisTarget } from './redis-target.js'
import { readTenantsFile } from './tenants-file.js'
import { tenantSchema, type Tenant, type TenantInput } from './tenant-schema.js'

export { ConfigError } from './errors.js'
export type { Tenant } from './tenant-schema.js'
export type { RedisTarget } from './redis-target.js'

/** Everything the broker needs to run, parsed and validated once. */
export interface Config {
  upstream: { url: string; apiKey: string; timeoutMs: number }
  server: { host: string; port: number }
  /** Where the tenants came from: a file (re-read on reload) or the environment. */
  tenantsFile: string | undefined
  tenants: Tenant[]
  redisUrl: string | undefined
  /** The shared state's Redis in any of its forms (URL, Sentinel, Cluster); where unset, `redisUrl` alone decides. */
  redis?: RedisTarget | undefined
  cacheEncryptionKey: string | undefined
  adminToken: string | undefined
  logLevel: Env['LOG_LEVEL']
  /** Things that start but are probably a mistake; the server logs them at start. */
  warnings?: string[]
  /** Audit lines carry subjects HMAC-hashed (default) or in clear. */
  auditSubjects?: Env['AUDIT_SUBJECTS']
}

/** The single tenant `default`, built from the `AUTH_*`, `CORS_ORIGINS`, `ALLOWED_CREATORS` and `BROKER_API_KEYS` variables. */
export function defaultTenantFromEnv(env: Env): Tenant {
  const key = env.AUTH_JWT_SECRET !== undefined ? 'secret' : env.AUTH_PUBLIC_KEY !== undefined ? 'publicKey' : 'jwksUrl'
  const keySources = [env.AUTH_JWT_SECRET, env.AUTH_PUBLIC_KEY, env.AUTH_JWKS_URL].filter((v) => v !== undefined)
  if (keySources.length > 1) {
    throw new ConfigError(['AUTH_JWT_SECRET: set only one of AUTH_JWT_SECRET, AUTH_PUBLIC_KEY and AUTH_JWKS_URL'])
  }
  // AUTH_ISSUER alone: the keys come from the issuer's OpenID Connect discovery document.
  const input: TenantInput = {
    auth: {
      ...((keySources.length === 1 || env.AUTH_ISSUER !== undefined) && {
        jwt: {
          ...(keySources.length === 1 && { [key]: key === 'publicKey' ? (keySources[0] as string).replace(/\\n/g, '\n') : keySources[0] }),
          ...(env.AUTH_ISSUER !== undefined && { issuer: env.AUTH_ISSUER }),
          ...(env.AUTH_AUDIENCE !== undefined && { audience: env.AUTH_AUDIENCE }),
          ...(env.AUTH_SUBJECT_CLAIM !== undefined && { subjectClaim: env.AUTH_SUBJECT_CLAIM }),
          ...(env.AUTH_CREATORS_CLAIM !== undefined && { creatorsClaim: env.AUTH_CREATORS_CLAIM }),
        },
      }),
      apiKeys: env.BROKER_API_KEYS,
    },
    cors: { origins: env.CORS_ORIGINS },
    creators: {
      allowed:
        env.ALLOWED_CREATORS?.trim() === '*'
          ? '*'
          : (env.ALLOWED_CREATORS ?? '').split(',').map((c) => c.trim()).filter((c) => c !== ''),
    },
  }
  const result = tenantSchema.safeParse(input)
  if (!result.success) throw new ConfigError(formatIssues(result.error).map(envName))
  return { id: 'default', ...result.data }
}

/** Maps a tenant-schema path back to the variable a user set. */
function envName(line: string): string {
  const names: Array<[RegExp, string]> = [
    [/^auth\.jwt\.secret/, 'AUTH_JWT_SECRET'],
    [/^auth\.jwt\.publicKey/, 'AUTH_PUBLIC_KEY'],
    [/^auth\.jwt\.jwksUrl/, 'AUTH_JWKS_URL'],
    [/^auth\.jwt\.issuer/, 'AUTH_ISSUER'],
    [/^auth\.jwt\.audience/, 'AUTH_AUDIENCE'],
    [/^auth\.jwt\.subjectClaim/, 'AUTH_SUBJECT_CLAIM'],
    [/^auth\.jwt\.creatorsClaim/, 'AUTH_CREATORS_CLAIM'],
    [/^auth\.jwt/, 'AUTH_JWT_SECRET'],
    [/^auth\.apiKeys(?:\.(\d+))?/, 'BROKER_API_KEYS'],
    [/^cors\.origins(?:\.(\d+))?/, 'CORS_ORIGINS'],
    [/^creators\.allowed(?:\.(\d+))?/, 'ALLOWED_CREATORS'],
  ]
  // A comma list's entry by its place (1-based), not its value: a key hash is not printed.
  for (const [re, name] of names) {
    const match = re.exec(line)
    if (match === null) continue
    const index = match[1]
    return `${index === undefined ? name : `${name} (entry ${Number(index) + 1})`}${line.slice(match[0].length)}`
  }
  return line
}

function warningsFor(env: Env, tenants: readonly Tenant[]): string[] {
  const warnings: string[] = []
  for (const t of tenants) {
    if (t.auth.jwt === undefined && t.auth.apiKeys.length === 0) {
      warnings.push(
        `tenant ${t.id} has no way to authenticate callers (set AUTH_JWT_SECRET, AUTH_PUBLIC_KEY, AUTH_JWKS_URL, AUTH_ISSUER or BROKER_API_KEYS): every POST /v1/token is a 401`,
      )
    }
    if (t.auth.jwt?.secret !== undefined && Buffer.byteLength(t.auth.jwt.secret) < 32) {
      warnings.push(`tenant ${t.id}: the HMAC secret for user JWTs is shorter than 32 bytes; use a longer random one`)
    }
  }
  if (env.ADMIN_TOKEN !== undefined && env.ADMIN_TOKEN.length < 16) {
    warnings.push('ADMIN_TOKEN is shorter than 16 characters; use a long random one')
  }
  return warnings
}

/** Loads the whole configuration from an environment; throws {@link ConfigError} naming the field. */
export async function loadConfig(rawEnv: NodeJS.ProcessEnv): Promise<Config> {
  const env = parseEnv(rawEnv)
  const tenants =
    env.TENANTS_FILE !== undefined ? await readTenantsFile(env.TENANTS_FILE, rawEnv) : [defaultTenantFromEnv(env)]
  return {
    upstream: { url: env.UPSTREAM_URL, apiKey: env.TIKTOOLS_API_KEY, timeoutMs: env.UPSTREAM_TIMEOUT_MS },
    server: { host: env.HOST, port: env.PORT },
    tenantsFile: env.TENANTS_FILE,
    tenants,
    redisUrl: env.REDIS_URL,
    redis: redisTargetFromEnv(env),
    cacheEncryptionKey: env.CACHE_ENCRYPTION_KEY,
    adminToken: env.ADMIN_TOKEN,
    logLevel: env.LOG_LEVEL,
    auditSubjects: env.AUDIT_SUBJECTS,
    warnings: warningsFor(env, tenants),
  }
}
