import type { Command, Redis } from 'ioredis'

/** The error a command gets when Redis has not answered within its deadline (ioredis's own wording). */
export const COMMAND_TIMED_OUT = 'Command timed out'

/**
 * What this module knows of a command, as bits of a property of its own (a symbol,
 * so it meets none of ioredis's): ARMED once its deadline is watched, FAILED once it
 * failed (ioredis sets `isResolved` only when a command succeeds), EXTENDED once it
 * was given its one more window. A property rather than WeakSets: a WeakSet's add
 * was ~1.3 µs of a Redis cache hit (its table grows with every command until a full GC).
 */
const MARKS = Symbol('tkb.commandDeadline')
const ARMED = 1
const FAILED = 2
const EXTENDED = 4
type Marked = Command & { [MARKS]?: number }

function marked(command: Command, bit: number): boolean {
  return (((command as Marked)[MARKS] ?? 0) & bit) !== 0
}

function mark(command: Command, bit: number): void {
  const c = command as Marked
  c[MARKS] = (c[MARKS] ?? 0) | bit
}
/** The deadlines of each connection's commands. */
const deadlines = new WeakMap<Redis, Deadlines>()

/**
 * Bounds every command sent on `connection` at `ms` of time this process was
 * running, where ioredis's `commandTimeout` counts wall-clock time. Two ways a
 * healthy Redis looks slow on a loaded machine, both seen in the failover
 * tests (event-loop stalls of 0.5–1.9 s at a load average of 12 on 2 cores):
 * - this process was busy past the deadline: Node runs due timers before it
 *   reads sockets, so a reply that came in the first millisecond loses to its
 *   own timer. The deadline is declared in `setImmediate`, after the poll has
 *   read what was waiting;
 * - the whole machine stalled (Redis with it): the timer fires late, and Redis
 *   has had no time to answer. A late timer grants one more window (once).
 *
 * One timer per connection, not one per command ({@link Deadlines}).
 *
 * @example
 * const redis = new Redis(url, { enableOfflineQueue: false }) // no commandTimeout of its own
 * boundCommands(redis, 400)
 */
export function boundCommands(connection: Redis, ms: number, options: { clusterNode?: boolean } = {}): void {
  const send = connection.sendCommand.bind(connection)
  const bound = new Deadlines(ms)
  deadlines.set(connection, bound)
  const watchFailure = options.clusterNode === true ? watchPromise : wrapReject
  connection.sendCommand = (command, stream) => {
    // A command re-sent (a redirection, a resend after reconnect) keeps its first deadline: it stays
    // where it was first watched until it settles or that deadline passes.
    if (!marked(command, ARMED)) {
      mark(command, ARMED)
      watchFailure(command)
      bound.add(command)
    }
    if (stream === undefined) coalesceWrites(connection)
    return send(command, stream)
  }
}

/** Commands of `connection` whose deadline is being watched (answered ones may linger until the next command or check). */
export function watchedCommands(connection: Redis): number {
  return deadlines.get(connection)?.size ?? 0
}

/**
 * Commands sent in one turn of the event loop leave the socket in one write: the
 * socket is corked until `setImmediate`, which runs once the poll phase has handled
 * every request that arrived together. Under load that is the commands of many cache
 * hits (each its limits script and token GET) in one write(2) instead of one each —
 * on loopback a write to Redis also pays for Redis's side of it, and it was over half
 * of a Redis hit's CPU time. When the broker is quiet the write leaves at the end of
 * the current turn, microseconds later. Each command is still sent, timed and answered
 * on its own — unlike ioredis's auto-pipelining, nothing waits behind another batch.
 */
function coalesceWrites(connection: Redis): void {
  const socket = (connection as unknown as { stream?: { writableCorked?: number; cork?: () => void; uncork?: () => void } }).stream
  if (socket?.cork === undefined || socket.uncork === undefined || (socket.writableCorked ?? 0) > 0) return
  socket.cork()
  setImmediate(uncork, socket as { uncork: () => void })
}

function uncork(socket: { uncork: () => void }): void {
  socket.uncork()
}

/**
 * The deadlines of one connection's commands, in the order they were sent, which is
 * the order they fall due (every command gets the same bound). One timer, set for the
 * earliest command still unanswered, instead of a timer and a promise reaction per
 * command (~2 µs of CPU each, two commands per Redis cache hit). Answered commands at
 * the front are dropped whenever a command is added or the timer fires, so a busy
 * connection holds only the commands of its last turn or two.
 */
class Deadlines {
  readonly #ms: number
  /** Commands in send order from `#head` on, and when each falls due (performance.now() ms). */
  #commands: Command[] = []
  #due: number[] = []
  #head = 0
  #timer: NodeJS.Timeout | undefined
  readonly #check = (): void => this.#expire()

  constructor(ms: number) {
    this.#ms = ms
  }

  get size(): number {
    return this.#commands.length - this.#head
  }

  add(command: Command): void {
    while (this.#head < this.#commands.length && settled(this.#commands[this.#head] as Command)) this.#head++
    this.#compact()
    this.#commands.push(command)
    this.#due.push(performance.now() + this.#ms)
    this.#timer ??= this.#arm(this.#ms)
  }

  /** Fails each command past its deadline, or gives it one more window when the timer itself came late. */
  #expire(): void {
    this.#timer = undefined
    const now = performance.now()
    const commands = this.#commands
    const due = this.#due
    while (this.#head < commands.length) {
      const command = commands[this.#head] as Command
      const at = due[this.#head] as number
      const done = settled(command)
      if (!done && at > now) break
      this.#head++
      if (done) continue
      // Late by more than half a window: this process (or the machine) stood still, and that time was not Redis's.
      if (now - at > this.#ms / 2 && !marked(command, EXTENDED)) {
        mark(command, EXTENDED)
        // Due after every command queued so far (each fell due by now + ms): the order holds.
        commands.push(command)
        due.push(now + this.#ms)
        continue
      }
      setImmediate(timedOut, command)
    }
    this.#compact()
    if (this.#head < commands.length) this.#timer = this.#arm(Math.max(1, (due[this.#head] as number) - now))
  }

  #arm(ms: number): NodeJS.Timeout {
    // Unreferenced: a command in flight keeps its socket, and so the process, alive on its own.
    return setTimeout(this.#check, ms).unref()
  }

  /** Drops the consumed front of the arrays once it is most of them. */
  #compact(): void {
    if (this.#head === this.#commands.length) {
      this.#commands.length = 0
      this.#due.length = 0
      this.#head = 0
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#commands.length) {
      this.#commands = this.#commands.slice(this.#head)
      this.#due = this.#due.slice(this.#head)
      this.#head = 0
    }
  }
}

/**
 * One Redis: a failed command is known by its `reject` (wrapped here, no promise
 * reaction). ioredis settles it there, or re-sends it without a call to `reject`
 * (`reconnectOnError` 2), when it stays watched.
 */
function wrapReject(command: Command): void {
  const reject = command.reject
  command.reject = (err: Error) => {
    mark(command, FAILED)
    reject(err)
  }
}

/**
 * A Cluster node: the Cluster has already wrapped `reject` with its redirections
 * (MOVED, ASK, TRYAGAIN, a closed connection re-send the same command to another
 * node, and a pipeline retry makes it a new promise), so only the promise says
 * that the command failed for good.
 */
function watchPromise(command: Command): void {
  command.promise.then(undefined, () => mark(command, FAILED))
}

function settled(command: Command): boolean {
  return command.isResolved || marked(command, FAILED)
}

/** Declared after the poll phase (from `setImmediate`): a reply already waiting in the socket is read first. */
function timedOut(command: Command): void {
  if (!settled(command)) command.reject(new Error(COMMAND_TIMED_OUT))
}
