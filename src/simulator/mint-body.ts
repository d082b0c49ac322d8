import { z } from 'zod'
import { normalizeCreator } from './token.js'
import type { MintGrant } from './token.js'

/** A parsed request body, or the reason it is not JSON. */
export type JsonBody = { ok: true; value: unknown } | { ok: false; message: string }

/** Parses the raw body string; no body at all is `{}`, like tik.tools' defaults. */
export function readJsonBody(raw: unknown): JsonBody {
  if (raw === undefined || raw === null || (typeof raw === 'string' && raw.trim() === '')) {
    return { ok: true, value: {} }
  }
  if (typeof raw !== 'string') return { ok: true, value: raw }
  try {
    return { ok: true, value: JSON.parse(raw) as unknown }
  } catch {
    return { ok: false, message: 'Body is not valid JSON' }
  }
}

// Unknown fields are ignored, as a lenient public API would; the three known ones are checked strictly.
const mintBodySchema = z.object({
  expire_after: z.number().int().positive().optional(),
  allowed_creators: z.array(z.string()).min(1).max(100).optional(),
  max_websockets: z.number().int().positive().optional(),
})

/** Validates a mint body and applies tik.tools' defaults (3600 s, one WebSocket). */
export function parseMintBody(value: unknown): { ok: true; grant: MintGrant } | { ok: false; message: string } {
  const parsed = mintBodySchema.safeParse(value)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const where = issue?.path.length ? `${issue.path.join('.')}: ` : ''
    return { ok: false, message: `${where}${issue?.message ?? 'invalid body'}` }
  }
  const body = parsed.data
  const grant: MintGrant = { expire_after: body.expire_after ?? 3600, max_websockets: body.max_websockets ?? 1 }
  if (body.allowed_creators !== undefined) {
    const creators = body.allowed_creators.map(normalizeCreator)
    if (creators.some((c) => c.length === 0)) return { ok: false, message: 'allowed_creators: empty creator name' }
    grant.allowed_creators = [...new Set(creators)]
  }
  return { ok: true, grant }
}
