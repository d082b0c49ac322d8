import type { IncomingMessage, Server } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocket, WebSocketServer } from 'ws'
import { SIM_CLOSE, admitConnection } from './live-admission.js'
import type { SocketTicket } from './live-admission.js'
import { LiveStream } from './live-events.js'
import type { ResolvedOptions } from './options.js'
import type { SimulatorState } from './state.js'

/** The WebSocket side, attached to the simulator's HTTP server. */
export interface LiveSockets {
  /** Terminates every socket, live or still being admitted, and clears their timers. */
  close(): void
}

// setTimeout fires at once for delays above 2^31-1 ms, so long-lived tokens are re-armed in steps.
const MAX_TIMER_MS = 2 ** 31 - 1

/** Serves `ws://HOST:PORT/?uniqueId=&jwtKey=` on the given server's `upgrade` events. */
export function attachLiveSockets(server: Server, deps: { options: ResolvedOptions; state: SimulatorState }): LiveSockets {
  const { options, state } = deps
  const wss = new WebSocketServer({ noServer: true, maxPayload: 16 * 1024 })
  const byJti = new Map<string, Set<WebSocket>>()
  const cleanups = new Map<WebSocket, () => void>()
  let closed = false

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (closed) return void socket.destroy()
    wss.handleUpgrade(req, socket, head, (ws) => void admit(ws, req))
  })

  async function admit(ws: WebSocket, req: IncomingMessage): Promise<void> {
    const params = new URL(req.url ?? '/', 'http://simulator').searchParams
    const verdict = await admitConnection(params, options)
    if (ws.readyState !== WebSocket.OPEN) return
    if (!verdict.ok) return ws.close(verdict.code, verdict.reason)
    const { ticket } = verdict
    if (ticket) {
      const siblings = byJti.get(ticket.jti) ?? new Set<WebSocket>()
      // A sibling that has started closing no longer holds its slot, so a client may reconnect at once.
      const open = [...siblings].filter((s) => s.readyState === WebSocket.OPEN).length
      if (open >= ticket.maxSockets) return ws.close(SIM_CLOSE.TOO_MANY_CONNECTIONS, 'too many connections')
      byJti.set(ticket.jti, siblings.add(ws))
    }
    stream(ws, verdict.uniqueId, ticket)
  }

  function stream(ws: WebSocket, uniqueId: string, ticket: SocketTicket | undefined): void {
    const live = new LiveStream(uniqueId)
    const send = (event: unknown) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify(event))
    const events = setInterval(() => send(live.next()), options.eventIntervalMs)
    let expiry: NodeJS.Timeout | undefined

    const cleanup = (): void => {
      if (!cleanups.delete(ws)) return
      clearInterval(events)
      clearTimeout(expiry)
      state.stats.sockets--
      const siblings = ticket && byJti.get(ticket.jti)
      if (siblings) {
        siblings.delete(ws)
        if (siblings.size === 0) byJti.delete(ticket.jti)
      }
    }
    const expire = (): void => {
      ws.close(SIM_CLOSE.INVALID_TOKEN, 'token expired')
      cleanup() // no longer live, even before the peer completes the close handshake
    }
    const arm = (deadline: number): void => {
      const left = deadline - options.now()
      expiry = left > MAX_TIMER_MS ? setTimeout(() => arm(deadline), MAX_TIMER_MS) : setTimeout(expire, Math.max(0, left))
    }

    state.stats.sockets++
    cleanups.set(ws, cleanup)
    ws.once('close', cleanup)
    ws.once('error', cleanup)
    if (ticket) arm(ticket.expiresAtMs)
    send(live.roomInfo())
  }

  return {
    close() {
      closed = true
      for (const cleanup of [...cleanups.values()]) cleanup()
      for (const ws of wss.clients) ws.terminate()
      wss.close()
    },
  }
}
