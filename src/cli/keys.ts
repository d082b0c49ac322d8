import { randomBytes } from 'node:crypto'
import type { Readable } from 'node:stream'
import { hashApiKey } from '../auth/api-keys.js'
import { MAX_CREDENTIAL_BYTES } from '../auth/authenticator.js'
import { EXIT, UsageError, type Command } from './io.js'

/** Below this a key's unsalted SHA-256, which sits in the configuration, can be brute-forced. */
const SHORT_KEY_CHARS = 20

const TOO_LONG = `the key is longer than ${MAX_CREDENTIAL_BYTES} bytes, the broker's limit`

/** A fresh broker API key: `tkb_` and 32 random bytes in base64url (256 bits). */
export function generateApiKey(): string {
  return `tkb_${randomBytes(32).toString('base64url')}`
}

/** Reads a stream to its end, or returns undefined once it passes `maxBytes`. */
async function readAtMost(stream: Readable, maxBytes: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of stream) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer)
    size += buf.length
    if (size > maxBytes) {
      stream.destroy()
      return undefined
    }
    chunks.push(buf)
  }
  return Buffer.concat(chunks)
}

/** Why the broker could never accept this key, or undefined when it could. */
function keyProblem(key: string): string | undefined {
  if (key === '') return 'no key on stdin'
  if (/\s/.test(key)) return 'the key contains whitespace, which an Authorization: Bearer header cannot carry'
  if (Buffer.byteLength(key) > MAX_CREDENTIAL_BYTES) return TOO_LONG
  return undefined
}

/** `hash-key`: the key from stdin (one trailing newline dropped), its `sha256:<hex>` on stdout and nothing else. */
export const hashKeyCommand: Command = {
  name: 'hash-key',
  flags: [],
  positionals: [],
  async run(_args, io) {
    // Waiting for a key typed on a terminal would look like a hang, and echo it.
    if (io.stdin.isTTY === true) {
      throw new UsageError('hash-key reads the key from stdin; pipe it in: printf %s "$KEY" | tiktools-broker hash-key')
    }
    const input = await readAtMost(io.stdin, MAX_CREDENTIAL_BYTES + 2)
    const key = input?.toString('utf8').replace(/\r?\n$/, '')
    const problem = key === undefined ? TOO_LONG : keyProblem(key)
    if (key === undefined || problem !== undefined) {
      io.err(`tiktools-broker: hash-key: ${problem}\n`)
      return EXIT.failure
    }
    if (key.length < SHORT_KEY_CHARS) {
      io.err(`tiktools-broker: warning: a ${key.length}-character key is easy to guess from its hash; \`tiktools-broker new-key\` makes a 256-bit one\n`)
    }
    io.out(`${hashApiKey(key)}\n`)
    return EXIT.ok
  },
}

/** `new-key [--json]`: a fresh key and its hash, labelled or as JSON. */
export const newKeyCommand: Command = {
  name: 'new-key',
  flags: ['--json'],
  positionals: [],
  async run({ flags }, io) {
    const key = generateApiKey()
    const hash = hashApiKey(key)
    io.out(flags.has('--json') ? `${JSON.stringify({ key, hash })}\n` : `key:  ${key}\nhash: ${hash}\n`)
    return EXIT.ok
  },
}
