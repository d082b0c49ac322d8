import { constants } from 'node:fs'
import { access, stat } from 'node:fs/promises'
import { ConfigError } from '../config/errors.js'
import { TenantRegistry } from '../config/registry.js'
import type { Tenant } from '../config/tenant-schema.js'
import { readTenantsFile } from '../config/tenants-file.js'
import { EXIT, type CliIo, type Command } from './io.js'
import { summariseTenants } from './tenant-summary.js'

/** Why a path cannot be read as a file, in words, or undefined when it can. */
async function whyUnreadable(file: string): Promise<string | undefined> {
  try {
    if ((await stat(file)).isDirectory()) return 'it is a directory'
    await access(file, constants.R_OK)
    return undefined
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    return code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (code ?? 'error')
  }
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message.split('\n')[0] ?? err.name : String(err)
}

/**
 * Builds the authenticator as the server does, so a file that passes also
 * starts. Each tenant first on its own, so a failure names the tenant.
 */
function authenticatorProblems(tenants: readonly Tenant[]): string[] {
  const problems: string[] = []
  for (const tenant of tenants) {
    try {
      new TenantRegistry([tenant])
    } catch (err) {
      problems.push(`tenants.${tenant.id}.auth: cannot be used (${reason(err)})`)
    }
  }
  if (problems.length > 0) return problems
  try {
    new TenantRegistry(tenants)
  } catch (err) {
    return [`tenants: cannot be used together (${reason(err)})`]
  }
  return []
}

/** Validates the tenants file and builds the authenticator; throws {@link ConfigError} listing every problem. */
export async function checkTenantsFile(file: string, env: NodeJS.ProcessEnv): Promise<Tenant[]> {
  const tenants = await readTenantsFile(file, env)
  const problems = authenticatorProblems(tenants)
  if (problems.length > 0) throw new ConfigError(problems)
  return tenants
}

/** `check-config FILE`: exit 0 with a per-tenant summary, or 1 with every problem on stderr. */
export const checkConfigCommand: Command = {
  name: 'check-config',
  flags: [],
  positionals: ['FILE'],
  async run({ positionals }, io: CliIo) {
    const file = positionals[0] as string
    const unreadable = await whyUnreadable(file)
    if (unreadable !== undefined) {
      io.err(`tiktools-broker: cannot read ${file}: ${unreadable}\n`)
      return EXIT.failure
    }
    let tenants: Tenant[]
    try {
      tenants = await checkTenantsFile(file, io.env)
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      io.err(`tiktools-broker: ${file} is not a valid tenants file\n${err.issues.map((i) => `  ${i}\n`).join('')}`)
      return EXIT.failure
    }
    const count = `${tenants.length} tenant${tenants.length === 1 ? '' : 's'}`
    io.out(`${file}: OK, ${count}\n${summariseTenants(tenants).map((line) => `  ${line}\n`).join('')}`)
    return EXIT.ok
  },
}
