import { readFile } from 'node:fs/promises'
import { parse as parseYaml } from 'yaml'
import { ConfigError, formatIssues } from './errors.js'
import { tenantsFileSchema, type Tenant } from './tenant-schema.js'

const VARIABLE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g
const PLACEHOLDER = /__tkb_env_(\d+)__/g

/**
 * Replaces the placeholders left for `${VAR}` in every string of a parsed
 * document. Values go in after parsing, so they can never inject YAML structure.
 */
export function interpolate(
  value: unknown,
  env: NodeJS.ProcessEnv,
  names: readonly string[],
  path: string[],
  problems: string[],
): unknown {
  if (typeof value === 'string') {
    return value.replace(PLACEHOLDER, (_, index: string) => {
      const name = names[Number(index)] as string
      const v = env[name]
      if (v === undefined) {
        problems.push(`${path.join('.')}: environment variable ${name} is not set`)
        return ''
      }
      return v
    })
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, names, [...path, String(i)], problems))
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, interpolate(v, env, names, [...path, k], problems)]),
    )
  }
  return value
}

/** Parses tenants-file text (YAML, which also reads JSON) into validated tenants. */
export function parseTenantsText(text: string, env: NodeJS.ProcessEnv): Tenant[] {
  // `${VAR}` becomes a plain-scalar placeholder first, so it parses anywhere (in a flow map too).
  const names: string[] = []
  const marked = text.replace(VARIABLE, (_, name: string) => `__tkb_env_${names.push(name) - 1}__`)
  let doc: unknown
  try {
    doc = parseYaml(marked, { prettyErrors: false, maxAliasCount: 100 })
  } catch (err) {
    throw new ConfigError([`tenants file: not valid YAML or JSON (${(err as Error).message.split('\n')[0]})`])
  }
  const problems: string[] = []
  const interpolated = interpolate(doc, env, names, [], problems)
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
