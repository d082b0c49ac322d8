/** How the mint endpoint misbehaves; `'ok'` means it behaves like tik.tools. */
export type SimulatorMode = 'ok' | 'error500' | 'error400' | 'malformed' | 'no-token' | 'hang' | 'rate-limited'

/** Every {@link SimulatorMode}, for validation. */
export const SIMULATOR_MODES = [
  'ok', 'error500', 'error400', 'malformed', 'no-token', 'hang', 'rate-limited',
] as const satisfies readonly SimulatorMode[]

/** The injected faults: a mode and a delay before every mint answer. */
export interface SimulatorFaults {
  mode: SimulatorMode
  latencyMs: number
}

/**
 * Live counters. `requests` counts every mint request (faults included),
 * `mints` the tokens issued, `rateLimited` the 429 answers (real or injected),
 * `failures` every other mint answer without a token (400, 401, 500,
 * malformed, no-token, hang), `sockets` the WebSockets currently streaming.
 */
export interface SimulatorStats {
  requests: number
  mints: number
  rateLimited: number
  failures: number
  sockets: number
}

const MAX_BODIES = 100

/** The mutable state shared by the HTTP routes, the control endpoints and the WebSocket side. */
export class SimulatorState {
  faults: SimulatorFaults = { mode: 'ok', latencyMs: 0 }
  readonly stats: SimulatorStats = { requests: 0, mints: 0, rateLimited: 0, failures: 0, sockets: 0 }
  readonly lastBodies: unknown[] = []
  /** Aborted by close(), so that delayed and hanging answers end at once. */
  readonly closing = new AbortController()

  /** Keeps the last {@link MAX_BODIES} mint bodies, oldest first. */
  recordBody(body: unknown): void {
    this.lastBodies.push(body)
    if (this.lastBodies.length > MAX_BODIES) this.lastBodies.splice(0, this.lastBodies.length - MAX_BODIES)
  }

  /** Merges a partial fault set; throws a TypeError on an unknown mode or a bad latency. */
  setFaults(f: Partial<SimulatorFaults>): void {
    if (f.mode !== undefined && !SIMULATOR_MODES.includes(f.mode)) {
      throw new TypeError(`unknown simulator mode ${String(f.mode)}`)
    }
    if (f.latencyMs !== undefined && !(Number.isFinite(f.latencyMs) && f.latencyMs >= 0)) {
      throw new TypeError(`latencyMs must be a non-negative number, got ${String(f.latencyMs)}`)
    }
    this.faults = { mode: f.mode ?? this.faults.mode, latencyMs: f.latencyMs ?? this.faults.latencyMs }
  }

  resetFaults(): void {
    this.faults = { mode: 'ok', latencyMs: 0 }
  }

  /** Zeroes the request counters and forgets the recorded bodies; `sockets` is a gauge and stays. */
  resetStats(): void {
    Object.assign(this.stats, { requests: 0, mints: 0, rateLimited: 0, failures: 0 })
    this.lastBodies.length = 0
  }
}
