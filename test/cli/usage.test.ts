import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import t from 'tap'
import { CLI, runCliInProcess, runCliProcess } from './helpers.js'

t.test('the compiled tool exists and starts with a node shebang', async (t) => {
  t.ok(existsSync(CLI), `${CLI} exists (run \`npm run build\` first)`)
  const text = await readFile(CLI, 'utf8')
  t.equal(text.split('\n')[0], '#!/usr/bin/env node')
})

t.test('--help prints the usage on stdout and exits 0', async (t) => {
  const r = await runCliProcess(['--help'])
  t.equal(r.code, 0)
  t.equal(r.stderr, '')
  t.match(r.stdout, /^Usage: tiktools-broker <command> \[options\]/)
  for (const command of ['check-config FILE', 'hash-key', 'new-key [--json]']) t.match(r.stdout, command)
  t.match(r.stdout, /Exit status:\n {2}0 .*\n {2}1 .*\n(.*\n)* {2}2 /)
})

t.test('-h and <command> --help print the same usage', async (t) => {
  const help = (await runCliInProcess(['--help'])).stdout
  for (const args of [['-h'], ['help'], ['check-config', '--help'], ['new-key', '-h'], ['hash-key', '--help']]) {
    const r = await runCliInProcess(args)
    t.same(r, { code: 0, stdout: help, stderr: '' }, args.join(' '))
  }
})

t.test('no arguments: the usage on stderr, exit 2', async (t) => {
  const r = await runCliProcess([])
  t.equal(r.code, 2)
  t.equal(r.stdout, '')
  t.match(r.stderr, /^Usage: tiktools-broker/)
})

t.test('an unknown command: exit 2, named on stderr, nothing on stdout', async (t) => {
  const r = await runCliProcess(['frobnicate'])
  t.equal(r.code, 2)
  t.equal(r.stdout, '')
  t.equal(r.stderr, "tiktools-broker: unknown command 'frobnicate'\nRun 'tiktools-broker --help' for usage.\n")
})

t.test('bad usage of a known command exits 2', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['check-config'], /check-config: missing FILE/],
    [['check-config', 'a.yaml', 'b.yaml'], /check-config: unexpected argument b\.yaml/],
    [['new-key', '--jsn'], /new-key: unknown option --jsn/],
    [['hash-key', 'the-key'], /hash-key: unexpected argument the-key/],
  ]
  for (const [args, message] of cases) {
    const r = await runCliInProcess(args)
    t.equal(r.code, 2, args.join(' '))
    t.equal(r.stdout, '')
    t.match(r.stderr, message)
  }
  const real = await runCliProcess(['check-config'])
  t.same([real.code, real.stdout], [2, ''])
  t.match(real.stderr, /missing FILE\nRun 'tiktools-broker --help' for usage\.\n$/)
})
