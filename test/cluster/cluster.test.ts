import t from 'tap'
import { clusterBackend } from '../helpers/redis-backends.js'
import { countersSuite, ledgerSuite, overrideStoreSuite, rateLimitStoreSuite, sharedStateSuite, tokenStoreSuite } from '../state/redis-suites.js'

// The whole Redis suite against a real 3-primary Cluster (redis-server --cluster-enabled yes ×3,
// redis-cli --cluster create): every script and multi-key command must keep to one slot.
const backend = await clusterBackend(t)

tokenStoreSuite(t, backend)
countersSuite(t, backend)
ledgerSuite(t, backend)
rateLimitStoreSuite(t, backend)
overrideStoreSuite(t, backend)
sharedStateSuite(t, backend)
