/** What of a tenant decides which credentials it accepts. */
interface CredentialSettings {
  id: string
  auth: {
    apiKeys: readonly string[]
    jwt?: { issuer?: string | undefined; audience?: string | readonly string[] | undefined; audienceClaim?: string | undefined } | undefined
  }
}

/** A configuration problem: the field it is about, and the message naming both tenants. */
export interface Overlap {
  path: Array<string | number>
  message: string
}

function audiences(aud: string | readonly string[] | undefined): readonly string[] | undefined {
  return aud === undefined ? undefined : typeof aud === 'string' ? [aud] : aud
}

/**
 * Two tenants could both accept one JWT when they expect the same issuer
 * (or both leave it out) and their audiences do not keep them apart: both
 * must name audiences, with none in common, read from the same claim (one
 * token may carry `aud` for one tenant and `client_id` for the other). A tenant without an issuer beside
 * one with an issuer is not ambiguous: a token naming that issuer always goes
 * to the tenant that expects it, as the authenticator routes.
 */
function jwtOverlap(a: CredentialSettings, b: CredentialSettings): boolean {
  const ja = a.auth.jwt
  const jb = b.auth.jwt
  if (ja === undefined || jb === undefined) return false
  if (ja.issuer !== jb.issuer) return false
  const aa = audiences(ja.audience)
  const ab = audiences(jb.audience)
  if (aa === undefined || ab === undefined) return true
  if ((ja.audienceClaim ?? 'aud') !== (jb.audienceClaim ?? 'aud')) return true
  return aa.some((x) => ab.includes(x))
}

/**
 * Credentials that would name more than one tenant (contract section 2): an
 * API-key hash listed twice (hex compared case-insensitively), or two tenants
 * that could both accept one user JWT. Each problem names both tenants and
 * never the hash itself.
 *
 * @example
 * credentialOverlaps([acme, beta]) // [{ path: ['beta', 'auth', 'apiKeys', 0], message: '…tenant acme…' }]
 */
export function credentialOverlaps(tenants: readonly CredentialSettings[]): Overlap[] {
  const problems: Overlap[] = []
  const owners = new Map<string, { id: string; index: number }>()
  for (const t of tenants) {
    t.auth.apiKeys.forEach((hash, index) => {
      const normal = hash.toLowerCase()
      const owner = owners.get(normal)
      if (owner === undefined) owners.set(normal, { id: t.id, index })
      else if (owner.id !== t.id) {
        problems.push({
          path: [t.id, 'auth', 'apiKeys', index],
          message: `the same API key hash as tenants.${owner.id}.auth.apiKeys.${owner.index}: one key must name one tenant (${owner.id} or ${t.id})`,
        })
      }
    })
  }
  tenants.forEach((b, j) => {
    for (const a of tenants.slice(0, j)) {
      if (!jwtOverlap(a, b)) continue
      const issuer = a.auth.jwt?.issuer
      problems.push({
        path: [b.id, 'auth', 'jwt'],
        message:
          `tenants ${a.id} and ${b.id} could both accept one user JWT (${issuer === undefined ? 'no issuer set' : `issuer ${issuer}`}); ` +
          'give them different issuers, or each its own audience with none in common, read from the same claim',
      })
    }
  })
  return problems
}
