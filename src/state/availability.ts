/**
 * up: connected and writes work. suspect: a command just failed, or the
 * connection dropped; until a probe or the reconnect decides, requests use
 * local state (nothing logged yet). slow:
 * connected, not answering in time. replica: answering, but refusing writes
 * (READONLY: demoted, or not yet re-resolved). refusing: a primary refusing
 * writes for now (MISCONF, OOM). down: not connected.
 */
export type Condition = 'starting' | 'up' | 'suspect' | 'slow' | 'replica' | 'refusing' | 'down'

/** A change of availability: the caller logs it, once. */
export interface Change {
  from: Condition
  to: Condition
}

/** A probe's place in time: its answer counts only while no other evidence has changed the condition since. */
export type Ticket = number

/**
 * What this process knows about its shared Redis, from evidence that arrives
 * in any order. The connection's own events (closed, lost) are current and
 * always count. A probe (a write) is answered later: its answer counts only
 * if the condition did not change after it was sent, so a probe sent before
 * a recovery cannot undo it by failing late (a timeout, a closed connection),
 * and one sent before an outage cannot end it by succeeding late.
 *
 * @example
 * const ticket = availability.probe()
 * const change = availability.answer(ticket, await write().then(() => 'up', classify))
 */
export class Availability {
  #condition: Condition = 'starting'
  #epoch = 0

  get condition(): Condition {
    return this.#condition
  }

  /** A command failed, or the connection dropped, while Redis was up: suspect until a probe sent from now on (or a reconnect) answers. */
  suspect(): Change | undefined {
    return this.#condition === 'up' ? this.#become('suspect') : undefined
  }

  /** A probe is being sent now. */
  probe(): Ticket {
    return this.#epoch
  }

  /** The probe's answer: `up` when its write went through, else what its error means. Stale answers change nothing. */
  answer(ticket: Ticket, found: Condition): Change | undefined {
    return ticket === this.#epoch ? this.#become(found) : undefined
  }

  /** Current evidence (the connection closed, or never came): changes the condition whatever is in flight. */
  observe(found: Condition): Change | undefined {
    return this.#become(found)
  }

  #become(next: Condition): Change | undefined {
    const from = this.#condition
    if (next === from) return undefined
    // Once unavailable, only a write that goes through brings it back: a timeout then says nothing new.
    if (next === 'slow' && from !== 'up' && from !== 'suspect') return undefined
    this.#condition = next
    this.#epoch++
    return { from, to: next }
  }
}
