import type { FastifyBaseLogger } from 'fastify'
import { derivePurposeKey, hashName } from '../cache/crypto.js'
import { atTurnEnd } from '../http/turn-end.js'
import { lineWriter } from '../logger.js'
import type { Grant } from '../policy/grant.js'

/**
 * The audit trail: one line per upstream mint and per admin change, on its
 * own child logger (`"channel":"audit"`) so ops can route it separately.
 * Subjects are HMAC-hashed (keyed, so short user ids cannot be guessed back)
 * unless the operator asks for them in clear.
 */
export interface AuditLog {
  /** One `token.mint` line, made at the end of the current event-loop turn, after the turn's answers, and handed to the log then. */
  mint(grant: Grant): void
  /**
   * One `admin.<action>` line. `actor`: who asked — the holder of ADMIN_TOKEN (an admin call,
   * the default) or a signal to the process (`SIGHUP`: a reload).
   */
  adminChange(action: string, tenantId: string | null, detail: Record<string, unknown>, actor?: AdminActor): void
}

/** Who made an admin change: an admin API call, or a signal sent to the process. */
export type AdminActor = 'admin-token' | 'SIGHUP'

export interface AuditOptions {
  /** `hashed` (default) or `plain`. */
  subjects?: 'hashed' | 'plain'
  /** Key for the subject HMAC; replicas with the same key write the same hashes. */
  hashKey: string
}

/** Builds the audit log on a child of the app's logger. */
export function createAuditLog(log: FastifyBaseLogger, options: AuditOptions): AuditLog {
  const audit = log.child({ channel: 'audit' })
  // A mint's line is made of fields that are never secret (tenant id, hashed or operator-chosen subject, grant):
  // written as pino frames it, without the `redact` pass (a mint is on the request's path). Admin lines keep pino's.
  const write = lineWriter(audit)
  const key = derivePurposeKey(options.hashKey, 'audit subjects')
  const subject = (s: string): string => (options.subjects === 'plain' ? s : `hmac:${hashName(key, s)}`)
  return {
    mint(grant) {
      // Made at the end of the turn, after the answer it is about (http/turn-end.ts `after`), and handed to the log's
      // destination, which writes it with the other lines (logger.ts): the subject's HMAC and the line are no part of
      // what the client waits for (a line still to be made at an exit is made then, see turn-end; one made and still
      // to be written is written then, see logger.ts).
      atTurnEnd(
        () =>
          write(
            'info',
            {
              event: 'token.mint',
              tenant: grant.tenantId,
              subject: subject(grant.subject),
              grant: { creators: grant.creators, expireAfter: grant.expireAfter, maxWebsockets: grant.maxWebsockets },
            },
            'audit',
          ),
        'after',
      )
    },
    adminChange(action, tenantId, detail, actor = 'admin-token') {
      audit.info({ event: `admin.${action}`, tenant: tenantId, actor, ...detail }, 'audit')
    },
  }
}
