/**
 * Summarises a V8 `.cpuprofile` (from `BENCH_CPU_PROF=dir npm run bench`):
 * self time by file (src/ files by name, dependencies by package) and by
 * function, and total (inclusive) time of the broker's own functions.
 *
 *   npx tsx bench/profile.ts /tmp/prof/CPU.….cpuprofile [top]
 */
import { readFileSync } from 'node:fs'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}
interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

const [file, topArg] = process.argv.slice(2)
if (file === undefined) throw new Error('usage: tsx bench/profile.ts <file.cpuprofile> [top]')
const top = Number(topArg ?? 25)
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile

/** Where a frame's code lives: `src/…` for ours, the package for a dependency, `node:…` for Node's own. */
function place(url: string): string {
  if (url === '') return '(native/V8)'
  const nm = url.lastIndexOf('node_modules/')
  if (nm >= 0) {
    const rest = url.slice(nm + 13).split('/')
    return (rest[0] as string).startsWith('@') ? `${rest[0]}/${rest[1]}` : (rest[0] as string)
  }
  // The broker runs from dist/ in the bench; name its files as in src/.
  const own = url.search(/\/(src|dist)\//)
  if (own >= 0) return `src/${url.slice(own + 1).replace(/^(src|dist)\//, '').replace(/\.js$/, '.ts')}`
  if (url.startsWith('node:')) return url
  return url.replace(/^file:\/\//, '')
}

const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const parent = new Map<number, number>()
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
const selfUs = new Map<number, number>()
profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))
const idle = new Set(profile.nodes.filter((n) => ['(idle)', '(program)', '(garbage collector)'].includes(n.callFrame.functionName)).map((n) => n.id))
let total = 0
let busy = 0
for (const [id, us] of selfUs) {
  total += us
  if (!idle.has(id) || byId.get(id)?.callFrame.functionName === '(garbage collector)') busy += us
}

const add = (m: Map<string, number>, k: string, v: number): void => void m.set(k, (m.get(k) ?? 0) + v)
const selfByPlace = new Map<string, number>()
const selfByFn = new Map<string, number>()
const totalByFn = new Map<string, number>()
for (const [id, us] of selfUs) {
  const n = byId.get(id) as ProfileNode
  if (idle.has(id) && n.callFrame.functionName !== '(garbage collector)') continue
  add(selfByPlace, place(n.callFrame.url), us)
  add(selfByFn, `${n.callFrame.functionName || '(anonymous)'} ${place(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`, us)
  // Inclusive time: every distinct src/ function on the stack gets the sample once.
  const seen = new Set<string>()
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const f = (byId.get(cur) as ProfileNode).callFrame
    if (!/\/(src|dist)\//.test(f.url)) continue
    const key = `${f.functionName || '(anonymous)'} ${place(f.url)}:${f.lineNumber + 1}`
    if (!seen.has(key)) add(totalByFn, key, us)
    seen.add(key)
  }
}
const pct = (us: number): string => `${((100 * us) / busy).toFixed(1).padStart(5)}%`
const list = (title: string, m: Map<string, number>): void => {
  console.log(`\n${title}`)
  for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)}  ${k}`)
}
console.log(`${file}: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy (percentages are of busy time)`)
list('self time by place', selfByPlace)
list('self time by function', selfByFn)
list('total time of src/ functions (inclusive)', totalByFn)
