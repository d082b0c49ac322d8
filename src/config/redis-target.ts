import { z } from 'zod'

/** One Redis endpoint, as the Sentinel and Cluster forms list them. */
export interface RedisNode {
  host: string
  port: number
}

/** Credentials and TLS of the Sentinel and Cluster forms (`REDIS_USERNAME`, `REDIS_PASSWORD`, `REDIS_TLS`). */
export interface RedisAuth {
  username?: string
  password?: string
  tls: boolean
}

/**
 * Where the shared state lives, in one of the three forms an operator may
 * run: one Redis behind a URL, a Sentinel-managed primary, or a Cluster.
 */
export type RedisTarget =
  | ({ kind: 'url'; url: string } & RedisAuth)
  | ({ kind: 'sentinel'; sentinels: RedisNode[]; name: string } & RedisAuth)
  | ({ kind: 'cluster'; nodes: RedisNode[] } & RedisAuth)

// `host:port`, `[v6]:port`; the port is required so that a typo never silently means 6379.
const HOST_PORT = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)):(\d{1,5})$/

/** Parses one `host:port`; undefined when it is not one. */
export function parseHostPort(text: string): RedisNode | undefined {
  const m = HOST_PORT.exec(text)
  if (m === null) return undefined
  const port = Number(m[3])
  if (port < 1 || port > 65_535) return undefined
  return { host: (m[1] ?? m[2]) as string, port }
}

/** A comma list of `host:port` in one variable; each bad entry is an issue naming it. */
export const hostPortList = z
  .string()
  .optional()
  .transform((s, ctx) => {
    const items = (s ?? '').split(',').map((x) => x.trim()).filter((x) => x !== '')
    const nodes: RedisNode[] = []
    for (const item of items) {
      const node = parseHostPort(item)
      if (node === undefined) ctx.addIssue({ code: 'custom', message: `"${item}" is not host:port (e.g. 10.0.0.5:26379)` })
      else nodes.push(node)
    }
    return nodes
  })

/** `true`/`false` (also `1`/`0`, `yes`/`no`). */
export const booleanFlag = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { error: 'expected true or false' })
  .default('false')
  .transform((v) => v === 'true' || v === '1' || v === 'yes')

/** The Redis variables of the environment, as the env schema parses them. */
export interface RedisEnv {
  REDIS_URL?: string | undefined
  REDIS_SENTINELS: RedisNode[]
  REDIS_SENTINEL_MASTER?: string | undefined
  REDIS_CLUSTER_NODES: RedisNode[]
  REDIS_USERNAME?: string | undefined
  REDIS_PASSWORD?: string | undefined
  REDIS_TLS: boolean
}

/** One issue of {@link redisIssues}: the variable it names and what is wrong. */
export interface RedisIssue {
  variable: keyof RedisEnv
  message: string
}

/** What is wrong with the combination of Redis variables: exactly one form, each complete. */
export function redisIssues(env: RedisEnv): RedisIssue[] {
  const forms = [
    env.REDIS_URL !== undefined && 'REDIS_URL',
    env.REDIS_SENTINELS.length > 0 && 'REDIS_SENTINELS',
    env.REDIS_CLUSTER_NODES.length > 0 && 'REDIS_CLUSTER_NODES',
  ].filter((f): f is 'REDIS_URL' | 'REDIS_SENTINELS' | 'REDIS_CLUSTER_NODES' => f !== false)
  const issues: RedisIssue[] = []
  if (forms.length > 1) {
    issues.push({ variable: forms[1] as keyof RedisEnv, message: `set only one of REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER_NODES (found ${forms.join(', ')})` })
  }
  if (env.REDIS_SENTINELS.length > 0 && env.REDIS_SENTINEL_MASTER === undefined) {
    issues.push({ variable: 'REDIS_SENTINEL_MASTER', message: 'required with REDIS_SENTINELS (the name Sentinel monitors the primary under, e.g. mymaster)' })
  }
  if (env.REDIS_SENTINEL_MASTER !== undefined && env.REDIS_SENTINELS.length === 0) {
    issues.push({ variable: 'REDIS_SENTINELS', message: 'required with REDIS_SENTINEL_MASTER (a comma list of Sentinel host:port)' })
  }
  if (forms.length === 0) {
    for (const variable of ['REDIS_USERNAME', 'REDIS_PASSWORD'] as const) {
      if (env[variable] !== undefined) issues.push({ variable, message: 'set REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES as well (without one the state is in memory)' })
    }
    if (env.REDIS_TLS) issues.push({ variable: 'REDIS_TLS', message: 'set REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES as well (without one the state is in memory)' })
  }
  return issues
}

/** The target the (valid) variables describe; undefined means memory. */
export function redisTargetFromEnv(env: RedisEnv): RedisTarget | undefined {
  const auth: RedisAuth = {
    ...(env.REDIS_USERNAME !== undefined && { username: env.REDIS_USERNAME }),
    ...(env.REDIS_PASSWORD !== undefined && { password: env.REDIS_PASSWORD }),
    tls: env.REDIS_TLS,
  }
  if (env.REDIS_URL !== undefined) return { kind: 'url', url: env.REDIS_URL, ...auth }
  if (env.REDIS_SENTINELS.length > 0) return { kind: 'sentinel', sentinels: env.REDIS_SENTINELS, name: env.REDIS_SENTINEL_MASTER as string, ...auth }
  if (env.REDIS_CLUSTER_NODES.length > 0) return { kind: 'cluster', nodes: env.REDIS_CLUSTER_NODES, ...auth }
  return undefined
}

const list = (nodes: readonly RedisNode[]): string => nodes.map((n) => (n.host.includes(':') ? `[${n.host}]:${n.port}` : `${n.host}:${n.port}`)).join(',')

/**
 * The target in words for logs and `/readyz`: form and addresses, never a
 * password (a URL is reduced to `host:port/db`).
 *
 * @example
 * describeRedisTarget({ kind: 'sentinel', name: 'mymaster', sentinels: [{ host: 's1', port: 26379 }], tls: false })
 * // 'sentinel mymaster via s1:26379'
 */
export function describeRedisTarget(target: RedisTarget): string {
  const tls = target.tls || (target.kind === 'url' && target.url.startsWith('rediss:')) ? ' (tls)' : ''
  switch (target.kind) {
    case 'url': {
      let where = 'redis'
      try {
        const u = new URL(target.url)
        where = `${u.host}${u.pathname === '/' ? '' : u.pathname}`
      } catch {
        // validated at start; a test may pass anything
      }
      return `url ${where}${tls}`
    }
    case 'sentinel':
      return `sentinel ${target.name} via ${list(target.sentinels)}${tls}`
    case 'cluster':
      return `cluster via ${list(target.nodes)}${tls}`
  }
}

/** The config's target: its `redis` where set, else the plain `redisUrl` (which tests and older callers set). */
export function redisTargetOf(config: { redis?: RedisTarget | undefined; redisUrl: string | undefined }): RedisTarget | undefined {
  if (config.redis !== undefined) return config.redis
  return config.redisUrl === undefined ? undefined : { kind: 'url', url: config.redisUrl, tls: false }
}
