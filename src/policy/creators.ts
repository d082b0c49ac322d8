/** What a TikTok username looks like once normalised. */
export const CREATOR_PATTERN = /^[a-z0-9._]{2,24}$/

/** Strips one leading `@` and lower-cases: `@Streamer1` → `streamer1`. */
export function normaliseCreator(name: string): string {
  return (name.startsWith('@') ? name.slice(1) : name).toLowerCase()
}

/** True when a normalised name is a valid TikTok username. */
export function isCreatorName(name: string): boolean {
  return CREATOR_PATTERN.test(name)
}

/**
 * Reads a creators claim: an array of names, or one string of names separated
 * by spaces or commas. Anything else, or no claim, allows no creator.
 */
export function creatorsFromClaim(claim: unknown): Set<string> {
  const names = Array.isArray(claim)
    ? claim.filter((c): c is string => typeof c === 'string')
    : typeof claim === 'string'
      ? claim.split(/[\s,]+/)
      : []
  const out = new Set<string>()
  for (const n of names) {
    const c = normaliseCreator(n.trim())
    if (isCreatorName(c)) out.add(c)
  }
  return out
}
