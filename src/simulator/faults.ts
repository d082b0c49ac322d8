import { setTimeout as sleep } from 'node:timers/promises'
import type { SimulatorMode } from './state.js'

/** A mint answer to send: status, headers and a JSON object or a raw text body. */
export interface MintAnswer {
  status: number
  headers: Record<string, string>
  body: object | string
}

/** The answer of an injected fault (every mode but `ok` and `hang`, which the route handles). */
export function faultAnswer(
  mode: Exclude<SimulatorMode, 'ok' | 'hang'>,
  quotaHeaders: Record<string, string>,
  nowMs: number,
  perMinute: number,
): MintAnswer {
  switch (mode) {
    case 'error500':
      return { status: 500, headers: quotaHeaders, body: { status_code: 500, message: 'Internal error' } }
    case 'error400':
      return { status: 400, headers: quotaHeaders, body: { status_code: 400, message: 'Bad request' } }
    case 'malformed':
      return { status: 200, headers: { ...quotaHeaders, 'content-type': 'text/html; charset=utf-8' }, body: '<html>oops' }
    case 'no-token':
      return { status: 200, headers: quotaHeaders, body: { status_code: 0, data: {} } }
    case 'rate-limited':
      return {
        status: 429,
        headers: {
          'x-ratelimit-limit': String(perMinute),
          'x-ratelimit-remaining': '0',
          'x-ratelimit-reset': String(Math.ceil(nowMs / 1000) + 60),
          'retry-after': '60',
        },
        body: { status_code: 429, message: 'Rate limit exceeded' },
      }
  }
}

/** Waits `ms`; resolves false instead when the simulator closes first. */
export async function delay(ms: number, signal: AbortSignal): Promise<boolean> {
  try {
    await sleep(ms, undefined, { signal })
    return true
  } catch {
    return false
  }
}

/** Resolves when the simulator closes: how a hanging answer ends. */
export function untilClosed(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve()
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }))
}
