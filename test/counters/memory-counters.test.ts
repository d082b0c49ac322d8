import t from 'tap'
import { MemoryCounters } from '../../src/counters/memory-counters.js'
import { countersContract } from './counters.contract.js'

countersContract(t, 'MemoryCounters', async () => new MemoryCounters())
