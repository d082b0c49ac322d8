import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import type * as ClientModule from '../../dist/client/index.js'

export type { ClientModule }

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url))
export const clientDir = join(repoRoot, 'dist', 'client')

/**
 * Compiles src/client with tsconfig.client.json into dist/client. tap runs
 * test files in parallel, so each build goes to its own folder and its files
 * are renamed into place: a reader never sees a half-written file.
 */
async function buildClient(): Promise<void> {
  await mkdir(clientDir, { recursive: true })
  const tmp = await mkdtemp(join(repoRoot, 'dist', '.client-build-'))
  try {
    const tsc = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc')
    await promisify(execFile)(process.execPath, [tsc, '-p', 'tsconfig.client.json', '--outDir', tmp], { cwd: repoRoot })
    for (const name of await readdir(tmp)) await rename(join(tmp, name), join(clientDir, name))
  } finally {
    await rm(tmp, { recursive: true, force: true })
  }
}

let loaded: Promise<typeof ClientModule> | undefined

/** The client as browsers get it: the compiled dist/client/index.js, built first. */
export function loadClient(): Promise<typeof ClientModule> {
  loaded ??= buildClient().then(() => import(pathToFileURL(join(clientDir, 'index.js')).href) as Promise<typeof ClientModule>)
  return loaded
}
