/**
 * JSON text written by hand on the hot paths (a cache hit's body, the request
 * log line), each piece exactly what `JSON.stringify` writes for it (RFC 8259;
 * ECMA-262 `JSON.stringify`, well-formed since ES2019), without its generic pass.
 */

/** What JSON.stringify escapes in a string: `"`, `\`, U+0000–U+001F, and (any) surrogate code unit; a pair too, to keep the check simple. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/

/** A string as a JSON string literal, quotes included: `JSON.stringify(text)`, without its pass when there is nothing to escape (ids, names, paths). */
export function jsonString(text: string): string {
  return NEEDS_ESCAPE.test(text) ? JSON.stringify(text) : `"${text}"`
}

/** A number as JSON.stringify writes it: its shortest round-trip text, a non-finite one `null`. */
export function jsonNumber(n: number): string {
  return Number.isFinite(n) ? String(n) : 'null'
}

/** An array of strings (or null) as JSON text: `JSON.stringify(list)`. */
export function jsonStringArray(list: readonly string[] | null): string {
  if (list === null) return 'null'
  let text = '['
  for (let i = 0; i < list.length; i++) text += i === 0 ? jsonString(list[i] as string) : `,${jsonString(list[i] as string)}`
  return `${text}]`
}
