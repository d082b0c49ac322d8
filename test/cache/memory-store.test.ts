import t from 'tap'
import { MemoryTokenStore } from '../../src/cache/memory-store.js'
import { tokenStoreContract } from './token-store.contract.js'

tokenStoreContract(t, 'MemoryTokenStore', async () => new MemoryTokenStore(), { exclusiveLock: false })
