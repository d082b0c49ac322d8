/**
 * Work deferred to the end of the current event-loop turn, in two bands, all of it
 * in one `setImmediate` (the check phase, after the poll phase has handled every
 * socket that was ready):
 * - `answers`: what a client waits for (held answers, http/turn-writes.ts), first;
 * - `after`: what no client waits for (the log's buffered lines, logger.ts), then.
 *
 * Why the order: a log write is a system call to a pipe whose reader must be woken.
 * Scheduled on its own, the log's flush ran before the answers whenever a line was
 * logged before the first answer of the turn was held (a miss logs its audit line
 * before it answers), and the answer waited for it.
 *
 * A task queued while the bands run: into `after` while the answers run (a line
 * logged by an answer that failed, say), in this same pass; otherwise at the end of
 * the next turn.
 * If the process exits before a turn's end (`process.exit`, a crash), the `after`
 * tasks still pending run in its `exit` event, before the log's own exit flush
 * (this module's listener is added first, when the logger imports it), so a line
 * handed over as a task is not lost where a buffered line would not be.
 *
 * A task that throws does not keep the others from running; once all have run, its
 * error is thrown again as an uncaught exception, as it would have been from a
 * `setImmediate` of its own (the first at once, any others each in a `nextTick` of its own).
 */
export type TurnEndBand = 'answers' | 'after'

let answers: Array<() => void> = []
let after: Array<() => void> = []
let scheduled = false

/** Runs `task` at the end of this event-loop turn, in `band`'s order (see the module's note). */
export function atTurnEnd(task: () => void, band: TurnEndBand): void {
  if (band === 'answers') answers.push(task)
  else after.push(task)
  if (!scheduled) {
    scheduled = true
    setImmediate(runTurnEnd)
  }
}

/** Runs every task, each whatever the others did; the errors thrown, in order, added to `failures`. */
function runAll(tasks: Array<() => void>, failures: unknown[]): void {
  for (const task of tasks) {
    try {
      task()
    } catch (err) {
      failures.push(err)
    }
  }
}

// What a process exiting mid-turn still owes: the `after` band (no client is left to answer). Exiting already: an
// error is not thrown again.
process.on('exit', () => {
  const pending = after
  after = []
  runAll(pending, [])
})

function runTurnEnd(): void {
  const failures: unknown[] = []
  const held = answers
  answers = []
  runAll(held, failures)
  const then = after
  after = []
  runAll(then, failures)
  scheduled = false
  // Queued after its band had run: the next turn's.
  if (answers.length > 0 || after.length > 0) {
    scheduled = true
    setImmediate(runTurnEnd)
  }
  if (failures.length === 0) return
  for (const err of failures.slice(1)) {
    process.nextTick(() => {
      throw err
    })
  }
  throw failures[0]
}
