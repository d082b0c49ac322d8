import { z } from 'zod'
import { BrokerError } from '../errors.js'
import { CREATOR_PATTERN, normaliseCreator } from './creators.js'

const creator = z
  .string()
  .transform(normaliseCreator)
  .pipe(z.string().regex(CREATOR_PATTERN, 'must be a TikTok username (a-z, 0-9, . and _, 2 to 24 characters)'))

/** The body of `POST /v1/token`: every field optional, unknown fields refused. */
export const tokenRequestSchema = z.strictObject({
  allowed_creators: z.array(creator).min(1).max(50).optional(),
  expire_after: z.number().int().min(30).optional(),
  max_websockets: z.number().int().min(1).optional(),
  subject: z.string().min(1).max(256).optional(),
  /**
   * A token of this caller that tik.tools refused (WebSocket close 4003): see TokenCache.tokenFor. Any string:
   * one that is not the cached token, the empty string included, changes nothing (contract section 2).
   */
  rejected_token: z.string().max(16_384).optional(),
})

export type TokenRequest = z.output<typeof tokenRequestSchema>

const has = Object.prototype.hasOwnProperty

/**
 * The schema's rules, written out for the bodies clients really send: the
 * {@link TokenRequest} zod would answer, or undefined to let zod decide (and word
 * the error). It never accepts what zod refuses nor answers differently: a
 * property test (test/policy/token-request.property.test.ts) holds it to that.
 * It exists because zod's generic pass was the largest share of a cache hit's own code.
 */
export function plainTokenRequest(body: unknown): TokenRequest | undefined {
  if (body === undefined) return {}
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return undefined
  const fields = body as Record<string, unknown>
  const out: TokenRequest = {}
  for (const key in fields) {
    if (!has.call(fields, key)) return undefined
    const v = fields[key]
    switch (key) {
      case 'allowed_creators': {
        if (!Array.isArray(v) || v.length < 1 || v.length > 50) return undefined
        const creators: string[] = []
        for (const c of v as unknown[]) {
          if (typeof c !== 'string') return undefined
          const name = normaliseCreator(c)
          if (!CREATOR_PATTERN.test(name)) return undefined
          creators.push(name)
        }
        out.allowed_creators = creators
        break
      }
      case 'expire_after':
        if (!Number.isSafeInteger(v) || (v as number) < 30) return undefined
        out.expire_after = v as number
        break
      case 'max_websockets':
        if (!Number.isSafeInteger(v) || (v as number) < 1) return undefined
        out.max_websockets = v as number
        break
      case 'subject':
        if (typeof v !== 'string' || v.length < 1 || v.length > 256) return undefined
        out.subject = v
        break
      case 'rejected_token':
        if (typeof v !== 'string' || v.length > 16_384) return undefined
        out.rejected_token = v
        break
      default:
        return undefined
    }
  }
  return out
}

/**
 * Validates a parsed body; a missing body means `{}`. Throws BAD_REQUEST naming the field.
 * An empty `rejected_token` names no token, so it is left out: it changes nothing, as any
 * value that is not the cached token (and the request keeps a hit's path).
 */
export function parseTokenRequest(body: unknown): TokenRequest {
  const request = validTokenRequest(body)
  if (request.rejected_token === '') delete request.rejected_token
  return request
}

function validTokenRequest(body: unknown): TokenRequest {
  const plain = plainTokenRequest(body)
  if (plain !== undefined) return plain
  const result = tokenRequestSchema.safeParse(body === undefined ? {} : body)
  if (result.success) return result.data
  const issue = result.error.issues[0] as z.core.$ZodIssue
  const field = issue.path.length > 0 ? `${issue.path.map(String).join('.')}: ` : ''
  const text =
    issue.code === 'unrecognized_keys'
      ? `unknown field ${issue.keys.join(', ')}`
      : issue.code === 'invalid_type'
        ? `expected ${issue.expected}`
        : issue.message
  throw new BrokerError('BAD_REQUEST', `${field}${text}`)
}
