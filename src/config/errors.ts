import type { z } from 'zod'

/** A configuration problem; its message names the field, e.g. `tenants.acme.token.expireAfter.max: expected number`. */
export class ConfigError extends Error {
  readonly issues: string[]
  constructor(issues: string[]) {
    super(issues.join('\n'))
    this.name = 'ConfigError'
    this.issues = issues
  }
}

function describe(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_type') {
    if (!issue.message.startsWith('Invalid input')) return issue.message
    return issue.message.endsWith('received undefined') ? `required (expected ${issue.expected})` : `expected ${issue.expected}`
  }
  if (issue.code === 'invalid_key') return issue.issues[0]?.message ?? issue.message
  if (issue.code === 'unrecognized_keys') return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}`
  return issue.message
}

/** Turns zod issues into `path: message` lines, the path prefixed with `prefix` where given. */
export function formatIssues(error: z.ZodError, prefix: readonly PropertyKey[] = []): string[] {
  return error.issues.map((issue) => {
    const path = [...prefix, ...issue.path].map(String).join('.')
    return path === '' ? describe(issue) : `${path}: ${describe(issue)}`
  })
}
