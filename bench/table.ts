/** Medians, ranges and the one table `npm run bench` prints. */

/** The median of the values (NaN for none). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  if (sorted.length === 0) return Number.NaN
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2
}

/** `median [min–max]` of repeated measurements, each formatted by `f`; one value has no range. */
export function spread(values: readonly number[], f: (n: number) => string): string {
  if (values.length === 0) return '–'
  if (values.length === 1) return f(values[0] as number)
  return `${f(median(values))} [${f(Math.min(...values))}–${f(Math.max(...values))}]`
}

export const fmt = {
  int: (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a'),
  ms: (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : 'n/a'),
  us: (n: number): string => (Number.isFinite(n) ? Math.round(n).toString() : 'n/a'),
  ratio: (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : 'n/a'),
  bytes: (n: number): string => (Number.isFinite(n) ? Math.round(n).toString() : 'n/a'),
}

/** One line of the table: a label and its cells; a row with `section` set is a heading. */
export interface TableRow {
  section?: string
  label?: string
  cells?: string[]
}

/** Renders rows under `columns` as aligned plain text (also valid inside a Markdown code block). */
export function renderTable(columns: string[], rows: TableRow[]): string {
  const widths = columns.map((c, i) =>
    Math.max(c.length, ...rows.map((r) => (i === 0 ? (r.label ?? '').length : (r.cells?.[i - 1] ?? '').length))),
  )
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ').trimEnd()
  const out = [line(columns), widths.map((w) => '-'.repeat(w)).join('  ')]
  for (const r of rows) out.push(r.section !== undefined ? `— ${r.section}` : line([r.label ?? '', ...(r.cells ?? [])]))
  return out.join('\n')
}
