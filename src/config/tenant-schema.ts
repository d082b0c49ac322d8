import { createPublicKey } from 'node:crypto'
import { z } from 'zod'
import { normaliseCreator, CREATOR_PATTERN } from '../policy/creators.js'
import { credentialOverlaps } from './credential-overlap.js'

/** Algorithms a tenant may accept; `none` is never among them. */
export const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512'] as const
export const ASYMMETRIC_ALGORITHMS = [
  'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA',
] as const
const ALGORITHMS = [...HMAC_ALGORITHMS, ...ASYMMETRIC_ALGORITHMS] as const

/**
 * A `${VAR}` always arrives as a string: numbers and booleans in the file
 * accept their plain text form too (`perSubjectPerMinute: ${LIMIT}`).
 */
const fromText = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => {
    if (typeof v !== 'string') return v
    if (/^\s*-?\d+\s*$/.test(v)) return Number(v)
    if (v === 'true' || v === 'false') return v === 'true'
    return v
  }, schema)

const positiveInt = fromText(z.number().int().positive())
const creatorName = z.string().transform(normaliseCreator).pipe(
  z.string().regex(CREATOR_PATTERN, 'expected a TikTok username (a-z, 0-9, . and _, 2 to 24 characters)'),
)

/** A `{default, max}` pair where a missing default follows the max down. */
function range(defaults: { default: number; max: number }, min: number) {
  return z
    .strictObject({ default: fromText(z.number().int().min(min)).optional(), max: fromText(z.number().int().min(min)).optional() })
    .prefault({})
    .transform((r) => {
      const max = r.max ?? defaults.max
      return { default: r.default ?? Math.min(defaults.default, max), max }
    })
    .refine((r) => r.default <= r.max, { message: 'default must not exceed max', path: ['default'] })
}

/** A claim name: a top-level key (a full URL key too), or a dotted path into nested objects (`app_metadata.creators`). */
const claimPath = z.string().min(1).max(256)

/** An issuer whose `/.well-known/openid-configuration` can be fetched. */
function isDiscoverableIssuer(issuer: string): boolean {
  try {
    const u = new URL(issuer)
    return (u.protocol === 'https:' || u.protocol === 'http:') && u.search === '' && u.hash === '' && !issuer.includes('#')
  } catch {
    return false
  }
}

const jwtAuth = z
  .strictObject({
    issuer: z.string().min(1).optional(),
    audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
    secret: z.string().min(1).optional(),
    publicKey: z.string().refine(isPublicKey, 'expected a PEM public key (SPKI, RSA, EC or Ed25519)').optional(),
    jwksUrl: z.url({ protocol: /^https?$/ }).optional(),
    algorithms: z.array(z.enum(ALGORITHMS)).min(1).optional(),
    subjectClaim: claimPath.default('sub'),
    creatorsClaim: claimPath.optional(),
    audienceClaim: claimPath.default('aud'),
    authorizedParties: z.array(z.string().min(1)).min(1).optional(),
    clockToleranceSeconds: fromText(z.number().int().min(0).max(300)).default(5),
  })
  .superRefine((jwt, ctx) => {
    const sources = [jwt.secret, jwt.publicKey, jwt.jwksUrl].filter((s) => s !== undefined)
    if (sources.length > 1 || (sources.length === 0 && jwt.issuer === undefined)) {
      const message = 'exactly one of secret, publicKey or jwksUrl is required (or only an issuer, for OIDC discovery)'
      ctx.addIssue({ code: 'custom', message, path: [] })
      return
    }
    if (sources.length === 0 && !isDiscoverableIssuer(jwt.issuer as string)) {
      ctx.addIssue({ code: 'custom', path: ['issuer'], message: 'OIDC discovery needs an http(s) issuer URL without query or fragment' })
    }
    if (jwt.audienceClaim !== 'aud' && jwt.audience === undefined) {
      ctx.addIssue({ code: 'custom', path: ['audienceClaim'], message: 'audienceClaim needs an audience to compare with' })
    }
    const hmac = jwt.secret !== undefined
    const wrong = (jwt.algorithms ?? []).filter((a) => (HMAC_ALGORITHMS as readonly string[]).includes(a) !== hmac)
    if (wrong.length > 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['algorithms'],
        message: `${wrong.join(', ')} cannot be used with ${hmac ? 'a secret' : 'a public key'}`,
      })
    }
  })
  .transform((jwt) => ({
    ...jwt,
    algorithms: jwt.algorithms ?? [...(jwt.secret !== undefined ? HMAC_ALGORITHMS : ASYMMETRIC_ALGORITHMS)],
  }))

function isPublicKey(pem: string): boolean {
  try {
    return createPublicKey(pem).type === 'public'
  } catch {
    return false
  }
}

const apiKeyHash = z
  .string()
  .regex(/^sha256:[0-9a-fA-F]{64}$/, 'expected sha256:<64 hex digits>')
  .transform((h) => h.toLowerCase())

const origin = z.string().refine((o) => {
  try {
    const u = new URL(o)
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.origin === o.replace(/\/$/, '')
  } catch {
    return false
  }
}, 'expected an origin such as https://app.example.com').transform((o) => o.replace(/\/$/, ''))

/** The limits section, also the shape an admin PATCH may change. */
export const limitsSchema = z.strictObject({
  perSubjectPerMinute: positiveInt.default(60),
  perTenantPerMinute: positiveInt.default(6000),
  upstreamMintsPerMinute: positiveInt.optional(),
})

export const expireAfterSchema = range({ default: 600, max: 3600 }, 30)
export const maxWebsocketsSchema = range({ default: 1, max: 1 }, 1)

/** One tenant as the tenants file describes it; every section but `auth` has defaults. */
export const tenantSchema = z.strictObject({
  enabled: fromText(z.boolean()).default(true),
  auth: z.strictObject({ jwt: jwtAuth.optional(), apiKeys: z.array(apiKeyHash).default([]) }),
  cors: z.strictObject({ origins: z.array(origin).default([]) }).prefault({}),
  creators: z
    .strictObject({
      allowed: z.union([z.literal('*'), z.array(creatorName).max(10_000)]).default([]),
      allowUnrestricted: fromText(z.boolean()).default(false),
    })
    .prefault({}),
  token: z
    .strictObject({
      expireAfter: expireAfterSchema,
      maxWebsockets: maxWebsocketsSchema,
      minRemaining: fromText(z.number().int().min(0)).default(60),
      share: z.enum(['subject', 'grant']).default('subject'),
    })
    .prefault({}),
  limits: limitsSchema.prefault({}),
})

export const tenantIdSchema = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'expected a tenant id of a-z, 0-9, _ and -')

/** A tenant in the file must say how callers authenticate; one without a way in is a mistake there. */
const fileTenantSchema = tenantSchema.refine((t) => t.auth.jwt !== undefined || t.auth.apiKeys.length > 0, {
  message: 'a tenant needs auth.jwt or at least one auth.apiKeys entry',
  path: ['auth'],
})

export const tenantsFileSchema = z
  .strictObject({
    tenants: z.record(tenantIdSchema, fileTenantSchema).refine((t) => Object.keys(t).length > 0, 'at least one tenant is required'),
  })
  .superRefine((file, ctx) => {
    // One credential names one tenant: ambiguity is a configuration error, not a first-in-the-file-wins.
    const tenants = Object.entries(file.tenants).map(([id, t]) => ({ id, auth: t.auth }))
    for (const o of credentialOverlaps(tenants)) ctx.addIssue({ code: 'custom', path: ['tenants', ...o.path], message: o.message })
  })

export type TenantInput = z.input<typeof tenantSchema>
export type TenantSettings = z.output<typeof tenantSchema>
export type JwtAuthSettings = NonNullable<TenantSettings['auth']['jwt']>

/** Which kind of key verifies a tenant's user JWTs (never the key itself). */
export function jwtKeySource(jwt: JwtAuthSettings): 'secret' | 'publicKey' | 'jwksUrl' | 'discovery' {
  if (jwt.secret !== undefined) return 'secret'
  if (jwt.publicKey !== undefined) return 'publicKey'
  return jwt.jwksUrl !== undefined ? 'jwksUrl' : 'discovery'
}

/** A tenant's effective settings with its id. */
export interface Tenant extends TenantSettings {
  readonly id: string
}
