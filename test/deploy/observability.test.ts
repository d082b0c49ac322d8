/**
 * The operations artefacts against the running code: the Prometheus rules
 * pass `promtool check rules` and their unit tests, the dashboard's queries
 * parse, and every metric and label they use is one `GET /metrics` serves.
 * promtool is required (`apt-get install -y prometheus`; `.ci/run` installs
 * it): a missing promtool fails these tests, it never skips them.
 */
import { execFile, spawn } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { stringify, parse as parseYaml } from 'yaml'
import { buildBroker } from '../helpers/broker.js'

const root = fileURLToPath(new URL('../../', import.meta.url))
const ALERTS = join(root, 'deploy/prometheus/alerts.yml')
const ALERT_TESTS = join(root, 'deploy/prometheus/alerts.test.yml')
const DASHBOARD = join(root, 'deploy/grafana/tiktools-broker.json')
const PROMTOOL = process.env.PROMTOOL_PATH ?? 'promtool'

const run = promisify(execFile)

async function promtool(t: Test, ...args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await run(PROMTOOL, args, { cwd: root, timeout: 60_000 })
    return stdout + stderr
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stdout?: string; stderr?: string }
    if (e.code === 'ENOENT') {
      t.fail(`promtool is not installed (apt-get install -y prometheus, or set PROMTOOL_PATH): these tests fail rather than skip`)
    } else {
      t.fail(`promtool ${args.join(' ')} failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`)
    }
    return ''
  }
}

interface Rule {
  alert?: string
  record?: string
  expr: string
}

async function alertRules(): Promise<Rule[]> {
  const doc = parseYaml(await readFile(ALERTS, 'utf8')) as { groups: Array<{ rules: Rule[] }> }
  return doc.groups.flatMap((g) => g.rules)
}

interface Target {
  expr: string
  datasource: { type: string; uid: string }
}
interface Panel {
  id: number
  title: string
  type: string
  datasource: { type: string; uid: string }
  targets: Target[]
}
interface Dashboard {
  title: string
  uid: string
  panels: Panel[]
  templating: { list: Array<{ name: string; type: string; query: unknown; datasource?: { uid: string } }> }
}

async function dashboard(): Promise<Dashboard> {
  return JSON.parse(await readFile(DASHBOARD, 'utf8')) as Dashboard
}

/** Grafana's variables replaced by what a query would see, so that promtool can parse the expression. */
function concrete(expr: string): string {
  return expr.replaceAll('$__rate_interval', '5m').replaceAll('$tenant', '.*')
}

/** Every `tiktools_broker_…` metric in an expression, with the label names its selector uses. */
function selectors(expr: string): Array<{ name: string; labels: string[] }> {
  const out: Array<{ name: string; labels: string[] }> = []
  for (const m of expr.matchAll(/\b(tiktools_broker_[a-zA-Z0-9_]+)\s*(\{([^}]*)\})?/g)) {
    const labels = [...(m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map((l) => l[1] as string)
    out.push({ name: m[1] as string, labels })
  }
  return out
}

/** What /metrics serves: name → label names, histogram series names included. */
async function served(t: Test): Promise<Map<string, Set<string>>> {
  // A readiness check as main.ts passes one with Redis configured, so the Redis gauge is served.
  const b = await buildBroker(t, { deps: { readiness: [async () => undefined] } })
  const res = await b.app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 200)
  const names = new Map<string, Set<string>>()
  for (const m of res.body.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = m as unknown as [string, string, string]
    const metric = b.app.broker.metrics.registry.getSingleMetric(name) as { labelNames?: string[] } | undefined
    const labels = new Set(metric?.labelNames ?? [])
    names.set(name, labels)
    if (type === 'histogram') {
      names.set(`${name}_bucket`, new Set([...labels, 'le']))
      names.set(`${name}_sum`, labels)
      names.set(`${name}_count`, labels)
    }
  }
  return names
}

t.test('the alerting rules pass promtool check rules and their unit tests', async (t) => {
  t.match(await promtool(t, 'check', 'rules', ALERTS), /SUCCESS: \d+ rules found/)
  t.match(await promtool(t, 'test', 'rules', ALERT_TESTS), /SUCCESS/)
})

t.test('the alerts the contract asks for exist, each with a severity, a summary and a unit test', async (t) => {
  const rules = await alertRules()
  const names = rules.map((r) => r.alert)
  for (const wanted of [
    'TiktoolsQuotaNearlySpent',
    'TiktoolsUpstreamFailing',
    'TiktoolsUpstreamCircuitOpen',
    'TiktoolsBroker5xxRate',
    'TiktoolsBrokerRedisNotReady',
    'TiktoolsLedgerRefusing',
  ]) {
    t.ok(names.includes(wanted), wanted)
  }
  const tests = parseYaml(await readFile(ALERT_TESTS, 'utf8')) as {
    tests: Array<{ alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }> }>
  }
  const fired = new Set(tests.tests.flatMap((c) => c.alert_rule_test.filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname)))
  const silent = new Set(tests.tests.flatMap((c) => c.alert_rule_test.filter((a) => a.exp_alerts.length === 0).map((a) => a.alertname)))
  for (const rule of rules as Array<Rule & { labels?: { severity?: string }; annotations?: { summary?: string } }>) {
    t.match(rule.labels?.severity, /^(warning|critical)$/, `${rule.alert} has a severity`)
    t.ok(rule.annotations?.summary, `${rule.alert} has a summary`)
    t.ok(fired.has(rule.alert as string), `${rule.alert} has a unit test where it fires`)
    t.ok(silent.has(rule.alert as string), `${rule.alert} has a unit test where it stays silent`)
  }
})

t.test('the dashboard: a datasource variable, a tenant variable, the panels asked for', async (t) => {
  const d = await dashboard()
  t.equal(d.uid, 'tiktools-broker')
  const vars = new Map(d.templating.list.map((v) => [v.name, v]))
  t.match(vars.get('datasource'), { type: 'datasource', query: 'prometheus' })
  t.match(vars.get('tenant'), { type: 'query', datasource: { uid: '${datasource}' } })
  t.match(JSON.stringify(vars.get('tenant')?.query), /label_values\(tiktools_broker_token_requests_total, tenant\)/)
  const ids = d.panels.map((p) => p.id)
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique')
  for (const p of d.panels) {
    t.equal(p.datasource.uid, '${datasource}', `${p.title}: the datasource variable`)
    for (const target of p.targets) t.equal(target.datasource.uid, '${datasource}', `${p.title}: each query too`)
  }
  const titles = d.panels.map((p) => p.title)
  for (const wanted of [
    'Token requests by outcome',
    'Cache hit ratio',
    'Mints per minute vs quota',
    'Upstream latency',
    'Rate-limit rejections',
    'Upstream circuit',
    'Redis',
  ]) {
    t.ok(titles.includes(wanted), wanted)
  }
  const exprs = d.panels.flatMap((p) => p.targets.map((x) => x.expr)).join('\n')
  t.match(exprs, /histogram_quantile\(0\.5,/)
  t.match(exprs, /histogram_quantile\(0\.99,/)
  t.match(exprs, /tenant=~"\$tenant"/)
})

t.test('every dashboard query is valid PromQL (promtool parses it as a recording rule)', async (t) => {
  const d = await dashboard()
  const dir = await mkdtemp(join(tmpdir(), 'tkb-dashboard-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const rules = d.panels.flatMap((p) => p.targets.map((x, i) => ({ record: `dashboard:panel_${p.id}_${i}`, expr: concrete(x.expr) })))
  const file = join(dir, 'dashboard-queries.yml')
  await writeFile(file, stringify({ groups: [{ name: 'dashboard', rules }] }))
  t.match(await promtool(t, 'check', 'rules', file), new RegExp(`SUCCESS: ${rules.length} rules found`))
})

t.test('every metric and label the alerts and the dashboard use is one /metrics serves', async (t) => {
  const names = await served(t)
  const d = await dashboard()
  const exprs = [
    ...(await alertRules()).map((r) => ({ where: `alert ${r.alert}`, expr: r.expr })),
    ...d.panels.flatMap((p) => p.targets.map((x) => ({ where: `panel "${p.title}"`, expr: x.expr }))),
    ...d.templating.list.map((v) => ({ where: `variable ${v.name}`, expr: JSON.stringify(v.query) })),
  ]
  const used = new Set<string>()
  for (const { where, expr } of exprs) {
    for (const { name, labels } of selectors(expr)) {
      used.add(name)
      const known = names.get(name)
      if (known === undefined) {
        t.fail(`${where}: ${name} is not served by /metrics`)
        continue
      }
      for (const label of labels) t.ok(known.has(label), `${where}: ${name} has the label ${label}`)
    }
  }
  for (const name of [
    'tiktools_broker_upstream_circuit_open',
    'tiktools_broker_redis_ready',
    'tiktools_broker_ledger_refusals_total',
    'tiktools_broker_ledger_block_seconds',
    'tiktools_broker_ledger_in_flight',
    'tiktools_broker_upstream_mint_duration_seconds_bucket',
  ]) {
    t.ok(used.has(name), `${name} is used`)
    t.ok(names.has(name), `${name} is served`)
  }
  // The check itself can fail: a name /metrics does not serve is caught.
  t.equal(names.has('tiktools_broker_no_such_metric'), false)
})

// What a scrape serves passes Prometheus's own lint: a gauge named like a counter (prom-client's default
// nodejs_active_*_total) made `promtool check metrics` exit non-zero.
t.test('what /metrics serves after traffic passes promtool check metrics', async (t) => {
  const b = await buildBroker(t, { deps: { readiness: [async () => undefined] } })
  await b.token(undefined, {})
  const res = await b.app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 200)
  t.match(res.body, /^tiktools_broker_nodejs_active_handles\{/m, 'the default Node.js metrics are served')
  t.match(res.body, /^tiktools_broker_token_requests_total\{/m)
  const checked = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    const child = spawn(PROMTOOL, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (d: Buffer) => (output += d.toString()))
    child.stderr.on('data', (d: Buffer) => (output += d.toString()))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, output }))
    child.stdin.end(res.body)
  })
  t.equal(checked.code, 0, `promtool check metrics: ${checked.output}`)
  t.equal(checked.output.trim(), '', 'no lint finding')
})
