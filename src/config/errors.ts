import type { z } from 'zod'

/** C0 controls but tab, DEL and C1 controls: what an operator's value may carry that a terminal or log should not get raw. */
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/g

/** `text` with each control character written as `\uXXXX`, so that an echoed value cannot break a line or a terminal. */
function printable(text: string): string {
  return text.replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

/**
 * A configuration problem; its message names the field, e.g. `tenants.acme.token.expireAfter.max: expected number`.
 * Each issue is one printable line: a value it echoes has its control characters escaped (`\u0000`).
 */
export class ConfigError extends Error {
  readonly issues: string[]
  constructor(issues: string[]) {
    const lines = issues.map(printable)
    super(lines.join('\n'))
    this.name = 'ConfigError'
    this.issues = lines
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
