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
  /** A token of this caller that tik.tools refused (WebSocket close 4003): see TokenCache.tokenFor. */
  rejected_token: z.string().min(1).max(16_384).optional(),
})

export type TokenRequest = z.output<typeof tokenRequestSchema>

/** Validates a parsed body; a missing body means `{}`. Throws BAD_REQUEST naming the field. */
export function parseTokenRequest(body: unknown): TokenRequest {
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
