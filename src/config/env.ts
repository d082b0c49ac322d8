import { z } from 'zod'
import { ConfigError, formatIssues } from './errors.js'
import { booleanFlag, hostPortList, redisIssues } from './redis-target.js'

const list = z
  .string()
  .optional()
  .transform((s) => (s ?? '').split(',').map((x) => x.trim()).filter((x) => x !== ''))

const optionalText = z
  .string()
  .optional()
  .transform((s) => (s === undefined || s.trim() === '' ? undefined : s))

/** The environment variables the broker reads; see `.env.example`. */
export const envSchema = z.object({
  TIKTOOLS_API_KEY: z.string({ error: 'required' }).trim().min(1, 'required'),
  // An origin and at most a path prefix: the broker adds `/authentication/jwt?apiKey=…` itself (a query, a fragment
  // or credentials would be dropped, or would put the key where it does not belong).
  UPSTREAM_URL: z
    .url({ protocol: /^https?$/ })
    .default('https://api.tik.tools')
    .refine((u) => {
      // Not a URL at all: the url check above has said so already (zod runs this refinement anyway).
      if (!URL.canParse(u)) return true
      // By the text: a bare '?' or '#' leaves URL's search and hash empty.
      const url = new URL(u)
      return !u.includes('?') && !u.includes('#') && url.username === '' && url.password === ''
    }, 'expected an origin and at most a path (no query, fragment or credentials), e.g. https://api.tik.tools')
    .transform((u) => u.replace(/\/+$/, '')),
  UPSTREAM_TIMEOUT_MS: z.coerce.number().int().min(1).max(120_000).default(5000),
  HOST: z.string().min(1).default('0.0.0.0'),
  PORT: z.coerce.number().int().min(0).max(65_535).default(8080),
  TENANTS_FILE: optionalText,
  AUTH_JWT_SECRET: optionalText,
  AUTH_PUBLIC_KEY: optionalText,
  AUTH_JWKS_URL: optionalText,
  AUTH_ISSUER: optionalText,
  AUTH_AUDIENCE: optionalText,
  AUTH_SUBJECT_CLAIM: optionalText,
  AUTH_CREATORS_CLAIM: optionalText,
  ALLOWED_CREATORS: optionalText,
  CORS_ORIGINS: list,
  BROKER_API_KEYS: list,
  REDIS_URL: optionalText.pipe(z.url({ protocol: /^rediss?$/, error: 'expected a redis:// or rediss:// URL' }).optional()),
  REDIS_SENTINELS: hostPortList,
  REDIS_SENTINEL_MASTER: optionalText,
  REDIS_CLUSTER_NODES: hostPortList,
  REDIS_USERNAME: optionalText,
  REDIS_PASSWORD: optionalText,
  REDIS_TLS: booleanFlag,
  CACHE_ENCRYPTION_KEY: optionalText,
  ADMIN_TOKEN: optionalText,
  AUDIT_SUBJECTS: z.enum(['hashed', 'plain']).default('hashed'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
}).superRefine((env, ctx) => {
  // Exactly one Redis form, each complete: the issue names the variable to change.
  for (const issue of redisIssues(env)) ctx.addIssue({ code: 'custom', path: [issue.variable], message: issue.message })
})

export type Env = z.output<typeof envSchema>

/** Parses the environment once; a bad value throws a {@link ConfigError} naming the variable. */
export function parseEnv(env: NodeJS.ProcessEnv): Env {
  // `VAR=` (as in .env.example) means unset, so its default applies.
  const set = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v.trim() !== ''))
  const result = envSchema.safeParse(set)
  if (!result.success) throw new ConfigError(formatIssues(result.error))
  return result.data
}
