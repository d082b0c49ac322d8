/**
 * Does what the Docker image does, without Docker: reads the Dockerfile's
 * runtime stage, lays out a fresh folder with the files it copies, runs its
 * production `npm ci`, then starts its CMD (and the compose demo's simulator)
 * from that folder and talks to them over HTTP.
 *
 * Catches: a runtime import of a devDependency, a file the server reads at run
 * time that the image does not ship (openapi.yaml, dist/client), a broken
 * SIGTERM path, a demo configuration the broker refuses, and a Dockerfile that
 * drifts from what is checked here (non-root USER, HEALTHCHECK, exec-form CMD).
 *
 * Needs a built dist/: `npm run build && npx tap test/deploy/`.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { cp, mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, dirname, join, posix } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parse as parseYaml } from 'yaml'

// npm ci alone may take minutes on a cold cache.
t.setTimeout(6 * 60_000)

const root = fileURLToPath(new URL('../../', import.meta.url))
const INSTALL_TIMEOUT_MS = 180_000
const START_TIMEOUT_MS = 20_000
const STOP_TIMEOUT_MS = 5_000

// ------------------------------------------------------------ Dockerfile model

interface Instruction {
  keyword: string
  args: string
  line: number
}

interface Stage {
  from: string
  name: string | undefined
  instructions: Instruction[]
}

/**
 * A small Dockerfile reader: comments and parser directives dropped, `\`
 * continuations joined (comment lines inside a continuation are skipped, as
 * Docker does), one {@link Stage} per FROM. Enough for this repository's file.
 */
function parseDockerfile(text: string): { args: Map<string, string>; stages: Stage[] } {
  const args = new Map<string, string>()
  const stages: Stage[] = []
  const lines = text.split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1
    let current = (lines[i] as string).trim()
    if (current === '' || current.startsWith('#')) continue
    while (current.endsWith('\\') && i + 1 < lines.length) {
      current = current.slice(0, -1)
      i++
      const next = (lines[i] as string).trim()
      if (!next.startsWith('#')) current += ` ${next}`
    }
    const m = /^(\S+)\s*(.*)$/s.exec(current.trim()) as RegExpExecArray
    const keyword = (m[1] as string).toUpperCase()
    const rest = (m[2] as string).trim()
    if (keyword === 'FROM') {
      const [from, as, name] = rest.split(/\s+/)
      stages.push({ from: from as string, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] })
    } else if (keyword === 'ARG' && stages.length === 0) {
      const [k, v = ''] = rest.split('=', 2)
      args.set(k as string, v)
    } else {
      const stage = stages.at(-1)
      if (stage === undefined) throw new Error(`Dockerfile line ${start}: ${keyword} before any FROM`)
      stage.instructions.push({ keyword, args: rest, line: start })
    }
  }
  return { args, stages }
}

function all(stage: Stage, keyword: string): Instruction[] {
  return stage.instructions.filter((i) => i.keyword === keyword)
}

/** The JSON array of an exec-form instruction, or undefined for the shell form. */
function execForm(args: string): string[] | undefined {
  try {
    const value: unknown = JSON.parse(args)
    return Array.isArray(value) && value.every((v) => typeof v === 'string') ? value : undefined
  } catch {
    return undefined
  }
}

/** The words of `npm ci ...` inside a RUN (its --mount flags and other commands left out). */
function npmCiFlags(run: string): string[] | undefined {
  const m = /\bnpm\s+ci\b([^;&|]*)/.exec(run)
  return m === null ? undefined : (m[1] as string).trim().split(/\s+/).filter((w) => w !== '')
}

interface CopyStep {
  /** Paths in the repository (for `--from=<build stage>`: what that stage built from the repository). */
  sources: string[]
  /** Destination relative to the runtime WORKDIR; ends with `/` for a folder. */
  dest: string
}

/** Maps the runtime stage's COPY instructions to repository paths and folder-relative destinations. */
function copySteps(runtime: Stage, stages: Stage[], workdir: string): CopyStep[] {
  return all(runtime, 'COPY').map((copy) => {
    const words = copy.args.split(/\s+/)
    const flags = words.filter((w) => w.startsWith('--'))
    const paths = words.filter((w) => !w.startsWith('--'))
    const dest = paths.pop() as string
    const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length)
    let sources = paths
    if (from !== undefined) {
      const stage = stages.find((s) => s.name === from)
      if (stage === undefined) throw new Error(`COPY --from=${from}: no such stage`)
      const stageWorkdir = all(stage, 'WORKDIR').at(-1)?.args ?? '/'
      // The build stage works on a copy of the repository in its WORKDIR, so /app/dist there is the repository's dist/.
      sources = paths.map((p) => {
        if (!p.startsWith(`${stageWorkdir}/`)) throw new Error(`COPY --from=${from} ${p}: outside the stage's WORKDIR ${stageWorkdir}`)
        return p.slice(stageWorkdir.length + 1)
      })
    }
    const relative = dest.startsWith('/') ? posix.relative(workdir, dest) : posix.normalize(dest)
    const isDir = dest.endsWith('/') || sources.length > 1
    return { sources, dest: relative === '.' || relative === '' ? './' : isDir ? `${relative.replace(/\/$/, '')}/` : relative }
  })
}

// ----------------------------------------------------------------- processes

interface Proc {
  child: ChildProcess
  output: () => string
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

const children = new Set<ChildProcess>()
let tempDir: string | undefined

// Runs even when an assertion or a step above it failed.
t.teardown(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  if (tempDir !== undefined) await rm(tempDir, { recursive: true, force: true })
})

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Proc {
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  let output = ''
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }))
    child.once('error', (err) => {
      output += `\n${String(err)}`
      resolve({ code: null, signal: null })
    })
  })
  return { child, output: () => output, exited }
}

/** Resolves with the first match of `pattern` in the process's output; rejects if it exits or times out first. */
async function waitFor(proc: Proc, pattern: RegExp, timeoutMs: number, what: string): Promise<RegExpExecArray> {
  const deadline = Date.now() + timeoutMs
  let exited = false
  void proc.exited.then(() => (exited = true))
  for (;;) {
    const m = pattern.exec(proc.output())
    if (m !== null) return m
    if (exited) throw new Error(`${what} exited before ${pattern}:\n${proc.output()}`)
    if (Date.now() > deadline) throw new Error(`${what}: no ${pattern} within ${timeoutMs} ms:\n${proc.output()}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)))
  try {
    return await Promise.race([p, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * A clean environment: nothing of tap's (coverage, loaders in NODE_OPTIONS) nor
 * npm's own `npm_config_*` from `npm test`, which would otherwise point npm at
 * this repository. Only what reaching the registry may need is kept.
 */
function baseEnv(): NodeJS.ProcessEnv {
  const keep = ['PATH', 'HOME', 'NODE_EXTRA_CA_CERTS', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy']
  const env: NodeJS.ProcessEnv = {}
  for (const k of keep) if (process.env[k] !== undefined) env[k] = process.env[k]
  for (const k of ['npm_config_cache', 'npm_config_registry', 'npm_config_userconfig']) {
    if (process.env[k] !== undefined) env[k] = process.env[k]
  }
  return env
}

/** KEY=VALUE lines of an env file (comments and blank lines skipped, no quoting). */
function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {}
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const eq = line.indexOf('=')
    if (eq > 0) env[line.slice(0, eq).trim()] = line.slice(eq + 1).trim()
  }
  return env
}

// --------------------------------------------------------------------- tests

const distMain = join(root, 'dist', 'main.js')
if (!existsSync(distMain)) {
  t.fail(`dist/main.js is missing: this test runs the built server. Build first: \`npm run build && npx tap test/deploy/\``)
} else {
  const { args: dockerArgs, stages } = parseDockerfile(await readFile(join(root, 'Dockerfile'), 'utf8'))
  const runtime = stages.at(-1) as Stage
  const workdir = all(runtime, 'WORKDIR').at(-1)?.args ?? '/'
  const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>
    devDependencies: Record<string, string>
    engines?: { node?: string }
  }
  const compose = parseYaml(await readFile(join(root, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
    services: Record<string, { command?: string[]; environment?: Record<string, string>; env_file?: unknown }>
  }
  const demoEnv = parseEnvFile(await readFile(join(root, 'deploy', 'demo.env'), 'utf8'))

  let cmd: string[] | undefined
  let installFlags: string[] | undefined
  let imageNodeOptions: string | undefined
  let steps: CopyStep[] = []

  t.test('the Dockerfile: two stages on node:20 slim, production runtime stage', async (t) => {
    t.ok(stages.length >= 2, 'multi-stage')
    const base = (s: Stage) => s.from.replace(/\$\{(\w+)\}/g, (_, name: string) => dockerArgs.get(name) ?? '')
    t.match(base(runtime), /^node:20-bookworm-slim(@sha256:[0-9a-f]{64})?$/, 'runtime base is node:20-bookworm-slim')
    for (const s of stages) t.equal(base(s), base(runtime), `stage ${s.name ?? s.from} uses the same base`)
    t.match(pkg.engines?.node ?? '', /^>=20(\.|$)/, 'package.json engines allow the image\'s Node 20')

    const users = all(runtime, 'USER')
    t.ok(users.length > 0, 'the runtime stage sets a USER')
    const user = users.at(-1)?.args.split(':')[0]
    t.not(user, 'root', 'runs as a non-root user')
    t.not(user, '0', 'runs as a non-root uid')
    t.equal(user, 'node', 'runs as the image\'s `node` user')

    t.ok(all(runtime, 'ENV').some((e) => /\bNODE_ENV=production\b/.test(e.args)), 'NODE_ENV=production')
    // The image runs node with the V8 flags `npm start` gives it (the bench measures the broker that way).
    const nodeOptions = all(runtime, 'ENV')
      .map((e) => /^NODE_OPTIONS="([^"]*)"$/.exec(e.args.trim())?.[1])
      .find((v) => v !== undefined)
    const startFlags = (JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start.split(/\s+/).filter((a) => a.startsWith('--'))
    t.ok(startFlags.includes('--max-semi-space-size=32'), `npm start sets the semi-space size: ${startFlags.join(' ')}`)
    t.same(nodeOptions?.split(/\s+/), startFlags, 'ENV NODE_OPTIONS holds the flags of npm start')
    imageNodeOptions = nodeOptions
    t.ok(all(runtime, 'EXPOSE').some((e) => e.args.split(/\s+/).includes('8080')), 'EXPOSE 8080')
    t.same(all(runtime, 'STOPSIGNAL').map((s) => s.args), ['SIGTERM'], 'STOPSIGNAL SIGTERM')
    t.same(all(runtime, 'ENTRYPOINT'), [], 'no ENTRYPOINT in front of node')

    const health = all(runtime, 'HEALTHCHECK').at(-1)
    t.ok(health, 'HEALTHCHECK present')
    const healthCmd = /\bCMD\s+(\[.*\])\s*$/.exec(health?.args ?? '')?.[1]
    const healthArgv = healthCmd === undefined ? undefined : execForm(healthCmd)
    t.equal(healthArgv?.[0], 'node', 'HEALTHCHECK runs node itself (no curl in slim), exec form')
    t.match(healthArgv?.join(' ') ?? '', /\/healthz/, 'HEALTHCHECK asks /healthz')

    const cmds = all(runtime, 'CMD')
    t.equal(cmds.length, 1, 'one CMD')
    cmd = execForm(cmds[0]?.args ?? '')
    t.ok(cmd, `CMD in exec form (JSON array): ${cmds[0]?.args}`)
    t.equal(cmd?.[0], 'node', 'CMD starts node directly (PID 1, gets SIGTERM)')
    t.same(cmd, ['node', 'dist/main.js'], 'CMD runs dist/main.js')

    const installs = all(runtime, 'RUN').map((r) => npmCiFlags(r.args)).filter((f) => f !== undefined)
    t.equal(installs.length, 1, 'one npm ci in the runtime stage')
    installFlags = installs[0]
    t.ok(installFlags?.includes('--omit=dev'), 'npm ci --omit=dev')
    t.ok(installFlags?.includes('--ignore-scripts'), 'npm ci --ignore-scripts')

    steps = copySteps(runtime, stages, workdir)
    const shipped = steps.flatMap((s) => s.sources.map((src) => (s.dest.endsWith('/') ? posix.join(s.dest, basename(src)) : s.dest)))
    t.same(
      shipped.map((p) => posix.normalize(p)).sort(),
      ['dist', 'openapi.yaml', 'package-lock.json', 'package.json'],
      'the runtime stage ships package.json, package-lock.json, dist/ and openapi.yaml',
    )
    t.ok(
      all(runtime, 'COPY').some((c) => /--from=\S+\s+\S*\/dist\s/.test(`${c.args} `)),
      'dist/ comes from the build stage',
    )
  })

  t.test('docker-compose: the simulator runs from the same image, the broker on port 8080', async (t) => {
    t.same(compose.services.simulator?.command, ['node', 'dist/simulator/main.js'], 'simulator command')
    t.equal(compose.services.broker?.environment?.PORT, '8080', 'broker PORT matches EXPOSE and the proxy')
    t.equal(demoEnv.UPSTREAM_URL, 'http://simulator:8090', 'demo broker talks to the simulator')
    t.equal(demoEnv.SIM_API_KEYS, demoEnv.TIKTOOLS_API_KEY, 'demo simulator accepts the demo broker\'s key')
    const key = demoEnv.DEMO_BROKER_API_KEY ?? ''
    t.ok(
      (demoEnv.BROKER_API_KEYS ?? '').split(',').includes(`sha256:${createHash('sha256').update(key).digest('hex')}`),
      'BROKER_API_KEYS holds the hash of DEMO_BROKER_API_KEY',
    )
  })

  let app: string | undefined

  t.test('a fresh folder laid out as the image, production npm ci', async (t) => {
    if (installFlags === undefined || cmd === undefined) throw new Error('the Dockerfile checks failed; nothing to install')
    tempDir = await mkdtemp(join(tmpdir(), 'tiktools-broker-image-'))
    app = tempDir
    for (const step of steps) {
      for (const src of step.sources) {
        const from = join(root, src)
        const to = step.dest.endsWith('/') ? join(app, step.dest, basename(src)) : join(app, step.dest)
        await mkdir(dirname(to), { recursive: true })
        // Hidden entries in dist/ are other tests' in-progress client builds, not build output.
        await cp(from, to, { recursive: true, filter: (p) => p === from || !basename(p).startsWith('.') })
      }
    }
    t.ok(existsSync(join(app, 'dist', 'main.js')), 'dist/main.js copied')
    t.ok(existsSync(join(app, 'openapi.yaml')), 'openapi.yaml beside dist/')

    const npmArgs = ['ci', ...installFlags, '--no-audit', '--no-fund', '--prefer-offline']
    const npm = run('npm', [...new Set(npmArgs)], app, { ...baseEnv(), NODE_ENV: 'production' })
    const result = await withTimeout(npm.exited, INSTALL_TIMEOUT_MS)
    if (result === 'timeout') npm.child.kill('SIGKILL')
    t.same(result, { code: 0, signal: null }, `npm ${npmArgs.join(' ')} succeeds`, { output: npm.output().slice(-4000) })

    const installed = new Set(await readdir(join(app, 'node_modules')).catch(() => [] as string[]))
    const present = (name: string) => existsSync(join(app as string, 'node_modules', name))
    for (const dep of Object.keys(pkg.dependencies)) t.ok(present(dep), `dependency ${dep} installed`)
    const devInstalled = Object.keys(pkg.devDependencies).filter(present)
    t.same(devInstalled, [], 'no devDependency in node_modules')
    for (const tool of ['tap', 'typescript', 'tsx', 'playwright-core']) t.notOk(present(tool), `no ${tool}`)
    for (const bin of ['tsc', 'tap', 'tsx']) t.notOk(existsSync(join(app, 'node_modules', '.bin', bin)), `no .bin/${bin}`)
    t.ok(installed.size > 0, 'node_modules is not empty')
    t.same((await readdir(app)).sort(), ['dist', 'node_modules', 'openapi.yaml', 'package-lock.json', 'package.json'], 'nothing else in the folder')
  })

  t.test('the image CMD serves from that folder (demo settings, simulator upstream) and stops on SIGTERM', async (t) => {
    if (app === undefined || cmd === undefined) throw new Error('the install step failed; nothing to run')
    const cwd = app

    // The compose demo's simulator, from the same folder.
    const simCmd = compose.services.simulator?.command ?? ['node', 'dist/simulator/main.js']
    const simEnv: NodeJS.ProcessEnv = { PATH: process.env.PATH, NODE_ENV: 'production', SIM_HOST: '127.0.0.1', SIM_PORT: '0' }
    for (const [k, v] of Object.entries(demoEnv)) if (k.startsWith('SIM_') && k !== 'SIM_HOST' && k !== 'SIM_PORT') simEnv[k] = v
    const sim = run(process.execPath, simCmd.slice(1), cwd, simEnv)
    const simUrl = (await waitFor(sim, /listening at (http:\/\/127\.0\.0\.1:\d+)/, START_TIMEOUT_MS, 'simulator'))[1] as string

    // The broker as compose starts it with deploy/demo.env, on a free port here, the simulator as upstream.
    // (No REDIS_URL: this checks the install and the process, not the shared state.)
    const brokerEnv: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      NODE_ENV: 'production',
      ...demoEnv,
      HOST: '127.0.0.1',
      PORT: '0',
      UPSTREAM_URL: simUrl,
      LOG_LEVEL: 'info',
      // As the image sets it: node must start with these flags.
      ...(imageNodeOptions !== undefined && { NODE_OPTIONS: imageNodeOptions }),
    }
    const broker = run(process.execPath, cmd.slice(1), cwd, brokerEnv)
    const base = (await waitFor(broker, /Server listening at (http:\/\/127\.0\.0\.1:\d+)/, START_TIMEOUT_MS, 'broker'))[1] as string
    t.pass(`broker listening at ${base}`)

    const healthz = await fetch(`${base}/healthz`)
    t.equal(healthz.status, 200, 'GET /healthz 200')
    t.same(await healthz.json(), { status: 'ok' })
    t.equal((await fetch(`${base}/readyz`)).status, 200, 'GET /readyz 200')

    const spec = await fetch(`${base}/openapi.yaml`)
    t.equal(spec.status, 200, 'GET /openapi.yaml 200')
    t.equal(await spec.text(), await readFile(join(root, 'openapi.yaml'), 'utf8'), 'the shipped openapi.yaml')

    if (existsSync(join(root, 'dist', 'client', 'index.js'))) {
      const client = await fetch(`${base}/client.js`)
      t.equal(client.status, 200, 'GET /client.js 200')
      t.match(client.headers.get('content-type') ?? '', /javascript/)
      await client.arrayBuffer()
    } else {
      t.comment('dist/client/index.js not built: /client.js not checked')
    }

    // A whole mint through the production install: API key -> broker -> simulator.
    const res = await fetch(`${base}/v1/token`, {
      method: 'POST',
      headers: { authorization: `Bearer ${demoEnv.DEMO_BROKER_API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ subject: 'deploy-test' }),
    })
    const body = (await res.json()) as { data?: { token?: string; allowed_creators?: string[] } }
    t.equal(res.status, 200, 'POST /v1/token with the demo API key 200', { body })
    t.type(body.data?.token, 'string', 'a token minted by the simulator')
    t.same(body.data?.allowed_creators, (demoEnv.ALLOWED_CREATORS ?? '').split(',').sort(), 'the demo creators')

    broker.child.kill('SIGTERM')
    const stopped = await withTimeout(broker.exited, STOP_TIMEOUT_MS)
    t.same(stopped, { code: 0, signal: null }, `broker exits 0 within ${STOP_TIMEOUT_MS} ms of SIGTERM`)
    t.match(broker.output(), /shutting down/, 'logs its shutdown')
    for (const secret of [demoEnv.TIKTOOLS_API_KEY, demoEnv.AUTH_JWT_SECRET, demoEnv.DEMO_BROKER_API_KEY]) {
      if (secret) t.notOk(broker.output().includes(secret), 'no secret in the logs')
    }

    sim.child.kill('SIGTERM')
    t.same(await withTimeout(sim.exited, STOP_TIMEOUT_MS), { code: 0, signal: null }, 'simulator exits 0 on SIGTERM')
  })
}
