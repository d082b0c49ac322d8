/**
 * A local stand-in for tik.tools: the mint endpoint with its quota windows
 * and fault switches, and the LIVE WebSocket with its close codes.
 */
export { startSimulator } from './server.js'
export type { Simulator } from './server.js'
export type { SimulatorOptions } from './options.js'
export type { SimulatorFaults, SimulatorMode, SimulatorStats } from './state.js'
export { SIMULATOR_MODES } from './state.js'
export { SIM_CLOSE } from './live-admission.js'
export type { SimCloseCode } from './live-admission.js'
export { SimulatorTokenError, normalizeCreator, verifySimulatorToken } from './token.js'
export type { SimulatorClaims } from './token.js'
export type { LiveEvent, LiveUser } from './live-events.js'
