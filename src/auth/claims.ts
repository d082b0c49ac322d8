/**
 * Reads a claim by the name a tenant configured: an exact top-level key first
 * (so a full URL key such as `https://app.example/creators` or `cognito:groups`
 * works), else a dotted path into nested objects (`app_metadata.creators`).
 * Where a key itself contains dots, the longest matching key wins at each level.
 * Only own properties are read: `__proto__` or `constructor` never reach a prototype.
 *
 * @example
 * claimAt({ app_metadata: { creators: ['a1'] } }, 'app_metadata.creators') // ['a1']
 */
export function claimAt(claims: unknown, path: string): unknown {
  if (claims === null || typeof claims !== 'object' || Array.isArray(claims)) return undefined
  if (Object.hasOwn(claims, path)) return (claims as Record<string, unknown>)[path]
  for (let dot = path.lastIndexOf('.'); dot > 0; dot = path.lastIndexOf('.', dot - 1)) {
    const head = path.slice(0, dot)
    if (!Object.hasOwn(claims, head)) continue
    const found = claimAt((claims as Record<string, unknown>)[head], path.slice(dot + 1))
    if (found !== undefined) return found
  }
  return undefined
}

/** A claim that names one or several values (`aud`, `client_id`): always a list of strings. */
export function claimValues(claims: unknown, path: string): string[] {
  const value = claimAt(claims, path)
  if (typeof value === 'string') return [value]
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : []
}
