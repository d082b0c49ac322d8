import type { FastifyInstance } from 'fastify'
import { z } from 'zod'
import { readJsonBody } from './mint-body.js'
import type { MintQuota } from './quota.js'
import { SIMULATOR_MODES } from './state.js'
import type { SimulatorState } from './state.js'

const faultsSchema = z.strictObject({
  mode: z.enum(SIMULATOR_MODES).optional(),
  latencyMs: z.number().int().min(0).max(600_000).optional(),
})

/**
 * `/__sim/*`: switch faults, read stats and reset from another process
 * (multi-process tests, `npm run dev`, the benchmarks).
 */
export function registerControlRoutes(app: FastifyInstance, deps: { state: SimulatorState; quota: MintQuota }): void {
  const { state, quota } = deps

  app.post('/__sim/faults', async (request, reply) => {
    const body = readJsonBody(request.body)
    const parsed = body.ok ? faultsSchema.safeParse(body.value) : undefined
    if (!parsed?.success) {
      const message = parsed?.error.issues[0]?.message ?? 'Body is not valid JSON'
      return reply.code(400).send({ status_code: 400, message: `invalid faults: ${message}` })
    }
    state.setFaults(parsed.data)
    return reply.code(204).send()
  })

  app.get('/__sim/faults', async () => state.faults)

  app.get('/__sim/stats', async () => state.stats)

  app.post('/__sim/reset', async (_request, reply) => {
    quota.reset()
    state.resetStats()
    state.resetFaults()
    return reply.code(204).send()
  })
}
