import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

// Cluster-safety by reading the source: no command walks the whole keyspace
// (KEYS, SCAN) and no pub/sub, which a Cluster would route to one node only.
// That every script keeps to one slot is proven by running the suites on a Cluster (test/cluster/).
const src = fileURLToPath(new URL('../../src/', import.meta.url))

async function files(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true })
  const nested = await Promise.all(entries.map((e) => (e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)])))
  return nested.flat().filter((f) => f.endsWith('.ts'))
}

t.test('no KEYS, SCAN or pub/sub on the Redis client anywhere in src/', async (t) => {
  const forbidden = [/\.keys\(\s*['"`]/, /\.(scan|scanStream|sscan|hscan|subscribe|psubscribe|publish)\(/, /['"`](KEYS|SCAN|SUBSCRIBE|PUBLISH)['"`]/, /redis\.call\(\s*['"](KEYS|SCAN)['"]/]
  const found: string[] = []
  for (const file of await files(src)) {
    const text = await readFile(file, 'utf8')
    text.split('\n').forEach((line, i) => {
      if (forbidden.some((re) => re.test(line))) found.push(`${file.slice(src.length)}:${i + 1}: ${line.trim()}`)
    })
  }
  t.same(found, [], 'none found')
})
