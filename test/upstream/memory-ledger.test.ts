import t from 'tap'
import { MemoryLedger } from '../../src/upstream/quota-ledger.js'
import { quotaLedgerContract } from './quota-ledger.contract.js'

quotaLedgerContract(t, 'MemoryLedger', async () => new MemoryLedger())
