/**
 * deploy/kubernetes/ against the app's real configuration: the probes hit the
 * broker's own routes on the port it listens on, every variable is one the
 * broker reads (.env.example), the tenants file is where TENANTS_FILE says and
 * parses with the server's own parser, and the grace period outlasts the drain.
 */
import { execFile, spawnSync } from 'node:child_process'
import { readdir, readFile } from 'node:fs/promises'
import { join, posix } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { parseAllDocuments } from 'yaml'
import { buildApp, shutdownGraceMs } from '../../src/app.js'
import { loadConfig } from '../../src/config/index.js'
import { parseTenantsText } from '../../src/config/tenants-file.js'
import { createLogger } from '../../src/logger.js'

const root = fileURLToPath(new URL('../../', import.meta.url))
const DIR = join(root, 'deploy/kubernetes')

/* eslint-disable @typescript-eslint/no-explicit-any */
type Doc = Record<string, any>

async function manifests(): Promise<{ kustomization: Doc; resources: Doc[]; files: string[] }> {
  const kustomization = parseAllDocuments(await readFile(join(DIR, 'kustomization.yaml'), 'utf8'))[0]?.toJS() as Doc
  const resources: Doc[] = []
  for (const file of kustomization.resources as string[]) {
    for (const doc of parseAllDocuments(await readFile(join(DIR, file), 'utf8'))) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]?.message}`)
      resources.push(doc.toJS() as Doc)
    }
  }
  return { kustomization, resources, files: await readdir(DIR) }
}

function one(resources: Doc[], kind: string): Doc {
  const found = resources.filter((r) => r.kind === kind)
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`)
  return found[0] as Doc
}

/** The variables .env.example documents: the ones the broker reads. */
async function documentedVariables(): Promise<Set<string>> {
  const text = await readFile(join(root, '.env.example'), 'utf8')
  return new Set([...text.matchAll(/^([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1] as string))
}

const labelsMatch = (selector: Record<string, string>, labels: Record<string, string>): boolean =>
  Object.entries(selector).every(([k, v]) => labels[k] === v)

t.test('kustomization.yaml lists every manifest, and each parses', async (t) => {
  const { kustomization, resources, files } = await manifests()
  const listed = new Set(kustomization.resources as string[])
  for (const f of files.filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')) t.ok(listed.has(f), `${f} is in kustomization.yaml`)
  t.same(resources.map((r) => r.kind).sort(), [
    'ConfigMap',
    'Deployment',
    'HorizontalPodAutoscaler',
    'Namespace',
    'PodDisruptionBudget',
    'Secret',
    'Service',
  ])
  t.equal(kustomization.namespace, one(resources, 'Namespace').metadata.name)
})

t.test('the Deployment: probes on the broker’s routes and port, non-root, read-only root, resources', async (t) => {
  const { resources } = await manifests()
  const deployment = one(resources, 'Deployment')
  const pod = deployment.spec.template.spec
  t.same(deployment.spec.selector.matchLabels, { 'app.kubernetes.io/name': 'tiktools-broker' })
  t.ok(labelsMatch(deployment.spec.selector.matchLabels, deployment.spec.template.metadata.labels), 'the selector matches the pods')
  t.equal(pod.containers.length, 1)
  const c = pod.containers[0]
  const env = new Map<string, Doc>(c.env.map((e: Doc) => [e.name, e]))
  const port = c.ports.find((p: Doc) => p.name === 'http')
  t.equal(port.containerPort, Number(env.get('PORT')?.value), 'the container port is the PORT the broker listens on')
  t.equal(env.get('HOST')?.value, '0.0.0.0', 'listens beyond loopback')
  t.match(c.livenessProbe, { httpGet: { path: '/healthz', port: 'http' } })
  t.match(c.startupProbe, { httpGet: { path: '/healthz', port: 'http' } })
  t.match(c.readinessProbe, { httpGet: { path: '/readyz', port: 'http' } })

  t.equal(pod.securityContext.runAsNonRoot, true)
  t.not(pod.securityContext.runAsUser, 0)
  t.equal(pod.securityContext.seccompProfile.type, 'RuntimeDefault')
  t.match(c.securityContext, { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } })
  t.ok(c.resources.requests.cpu && c.resources.requests.memory, 'requests')
  t.ok(c.resources.limits.memory, 'a memory limit')

  // The grace period outlasts the preStop pause plus the broker's own drain for this UPSTREAM_TIMEOUT_MS.
  const timeoutMs = Number(env.get('UPSTREAM_TIMEOUT_MS')?.value ?? 5000)
  const preStop = Number(c.lifecycle?.preStop?.exec?.command?.at(-1) ?? 0)
  const needed = preStop + shutdownGraceMs(timeoutMs) / 1000
  t.ok(pod.terminationGracePeriodSeconds > needed, `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} > ${needed}`)
})

t.test('the env: each variable one the broker reads, secrets from the Secret, the tenants file where TENANTS_FILE says', async (t) => {
  const { resources } = await manifests()
  const pod = one(resources, 'Deployment').spec.template.spec
  const c = pod.containers[0]
  const configMap = one(resources, 'ConfigMap')
  const secret = one(resources, 'Secret')
  const documented = await documentedVariables()
  const tenantsText = Object.values(configMap.data as Record<string, string>).join('\n')
  const fileVariables = new Set([...tenantsText.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => m[1] as string))
  for (const e of c.env as Doc[]) {
    t.ok(documented.has(e.name) || fileVariables.has(e.name), `${e.name} is in .env.example (or a \${VAR} of the tenants file)`)
    const ref = e.valueFrom?.secretKeyRef
    if (ref !== undefined) {
      t.equal(ref.name, secret.metadata.name, `${e.name} comes from the Secret`)
      t.ok(ref.key in secret.stringData, `${e.name}: the Secret has the key ${ref.key}`)
    }
  }
  for (const name of ['TIKTOOLS_API_KEY', 'ADMIN_TOKEN', 'REDIS_URL']) {
    t.ok(c.env.find((e: Doc) => e.name === name)?.valueFrom?.secretKeyRef, `${name} is a secret, never a literal`)
  }
  t.equal(c.envFrom, undefined, 'every variable is named (no envFrom), so this test sees them all')

  const tenantsFile = c.env.find((e: Doc) => e.name === 'TENANTS_FILE')?.value as string
  const mount = c.volumeMounts.find((m: Doc) => m.mountPath === posix.dirname(tenantsFile))
  t.ok(mount, 'TENANTS_FILE lies in a mounted folder')
  t.equal(mount.subPath, undefined, 'mounted as a folder: a subPath mount never sees ConfigMap updates')
  t.equal(mount.readOnly, true)
  const volume = pod.volumes.find((v: Doc) => v.name === mount.name)
  t.equal(volume.configMap.name, configMap.metadata.name, 'from the ConfigMap')
  const key = posix.basename(tenantsFile)
  t.ok(key in configMap.data, `the ConfigMap has ${key}`)
  const tenants = parseTenantsText(configMap.data[key], Object.fromEntries([...fileVariables].map((v) => [v, 'x'])))
  t.ok(tenants.length > 0, 'the tenants file is valid for the broker')
  t.ok(c.volumeMounts.some((m: Doc) => m.mountPath === '/tmp'), 'a writable /tmp beside the read-only root')
})

t.test('the broker starts from exactly this environment (secrets filled in)', async (t) => {
  const { resources } = await manifests()
  const c = one(resources, 'Deployment').spec.template.spec.containers[0]
  const configMap = one(resources, 'ConfigMap')
  const { mkdtemp, writeFile, rm } = await import('node:fs/promises')
  const { tmpdir } = await import('node:os')
  const dir = await mkdtemp(join(tmpdir(), 'tkb-k8s-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const env: Record<string, string> = {}
  for (const e of c.env as Doc[]) {
    if (e.value !== undefined) env[e.name] = String(e.value)
    else if (e.name === 'TIKTOOLS_API_KEY' || e.name === 'ADMIN_TOKEN') env[e.name] = 'a-secret-value-long-enough-0123456789'
  }
  // The ConfigMap's file at a local path standing in for the mount.
  const file = join(dir, posix.basename(env.TENANTS_FILE as string))
  await writeFile(file, configMap.data[posix.basename(env.TENANTS_FILE as string)])
  const config = await loadConfig({ ...env, TENANTS_FILE: file })
  t.equal(config.server.port, 8080)
  t.same(config.warnings, [])
  const app = await buildApp({ ...config, server: { host: '127.0.0.1', port: 0 } }, { logger: createLogger('silent') })
  t.teardown(() => app.close())
  for (const probe of ['/healthz', '/readyz']) t.equal((await app.inject({ method: 'GET', url: probe })).statusCode, 200, probe)
})

t.test('Service, PodDisruptionBudget and HorizontalPodAutoscaler point at the Deployment', async (t) => {
  const { resources } = await manifests()
  const deployment = one(resources, 'Deployment')
  const podLabels = deployment.spec.template.metadata.labels
  const service = one(resources, 'Service')
  t.ok(labelsMatch(service.spec.selector, podLabels), 'the Service selects the pods')
  t.equal(service.spec.ports[0].targetPort, 'http')
  const pdb = one(resources, 'PodDisruptionBudget')
  t.ok(labelsMatch(pdb.spec.selector.matchLabels, podLabels), 'the PDB selects the pods')
  const hpa = one(resources, 'HorizontalPodAutoscaler')
  t.match(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name })
  t.ok(hpa.spec.minReplicas > pdb.spec.minAvailable, 'a drain can always evict a pod')
  t.ok(hpa.spec.maxReplicas >= hpa.spec.minReplicas)
})

// kubectl is not needed to run the broker or the other checks: without it this one test is reported as skipped.
const kubectl = spawnSync('kubectl', ['version', '--client'], { timeout: 20_000 }).error === undefined
t.test('kubectl kustomize renders it', { skip: kubectl ? false : 'kubectl is not installed' }, async (t) => {
  const rendered = (await promisify(execFile)('kubectl', ['kustomize', DIR], { timeout: 60_000 })).stdout
  const docs = parseAllDocuments(rendered).map((d) => d.toJS() as Doc)
  t.equal(docs.length, 7)
  for (const d of docs.filter((d) => d.kind !== 'Namespace')) t.equal(d.metadata.namespace, 'tiktools-broker', `${d.kind} in the namespace`)
})
