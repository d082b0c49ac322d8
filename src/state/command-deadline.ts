import type { Command, Redis } from 'ioredis'

/** The error a command gets when Redis has not answered within its deadline (ioredis's own wording). */
export const COMMAND_TIMED_OUT = 'Command timed out'

/** A deadline is extended at most this many times, so a command is never held longer than (1 + this) × its bound plus the stalls. */
const MAX_EXTENSIONS = 1

const armed = new WeakSet<Command>()

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
 * @example
 * const redis = new Redis(url, { enableOfflineQueue: false }) // no commandTimeout of its own
 * boundCommands(redis, 400)
 */
export function boundCommands(connection: Redis, ms: number): void {
  const send = connection.sendCommand.bind(connection)
  connection.sendCommand = (command, stream) => {
    // A command re-sent (a redirection, a resend after reconnect) keeps its first deadline.
    if (!armed.has(command)) {
      armed.add(command)
      arm(command, ms)
    }
    if (stream === undefined) coalesceWrites(connection)
    return send(command, stream)
  }
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

function arm(command: Command, ms: number): void {
  let timer: NodeJS.Timeout | undefined
  const expire = (extensions: number): void => {
    const due = performance.now() + ms
    timer = setTimeout(() => {
      // Late by more than half a window: this process (or the machine) stood still, and that time was not Redis's.
      if (performance.now() - due > ms / 2 && extensions < MAX_EXTENSIONS) return expire(extensions + 1)
      setImmediate(() => {
        if (!command.isResolved) command.reject(new Error(COMMAND_TIMED_OUT))
      })
    }, ms)
  }
  expire(0)
  const clear = (): void => clearTimeout(timer)
  command.promise.then(clear, clear)
}
