import { readFile } from 'node:fs/promises'
import { parse as parseYaml } from 'yaml'
import { ConfigError, formatIssues } from './errors.js'
import { tenantsFileSchema, type Tenant } from './tenant-schema.js'

const VARIABLE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g

/**
 * Replaces `${VAR}` in every string of a parsed document. Done after parsing,
 * so a value can never inject YAML structure.
 */
export function interpolate(value: unknown, env: NodeJS.ProcessEnv, path: string[], problems: string[]): unknown {
  if (typeof value === 'string') {
    return value.replace(VARIABLE, (_, name: string) => {
      const v = env[name]
      if (v === undefined) {
        problems.push(`${path.join('.')}: environment variable ${name} is not set`)
        return ''
      }
      return v
    })
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, [...path, String(i)], problems))
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, interpolate(v, env, [...path, k], problems)]),
    )
  }
  return value
}

/** Parses tenants-file text (YAML, which also reads JSON) into validated tenants. */
export function parseTenantsText(text: string, env: NodeJS.ProcessEnv): Tenant[] {
  let doc: unknown
  try {
    doc = parseYaml(text, { prettyErrors: false, maxAliasCount: 100 })
  } catch (err) {
    throw new ConfigError([`tenants file: not valid YAML or JSON (${(err as Error).message.split('\n')[0]})`])
  }
  const problems: string[] = []
  const interpolated = interpolate(doc, env, [], problems)
  if (problems.length > 0) throw new ConfigError(problems)
  const result = tenantsFileSchema.safeParse(interpolated)
  if (!result.success) throw new ConfigError(formatIssues(result.error))
  return Object.entries(result.data.tenants).map(([id, settings]) => ({ id, ...settings }))
}

/** Reads and validates a tenants file. */
export async function readTenantsFile(file: string, env: NodeJS.ProcessEnv): Promise<Tenant[]> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new ConfigError([`TENANTS_FILE: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`])
  }
  return parseTenantsText(text, env)
}
