import t from 'tap'
import { plainBackend } from '../helpers/redis-backends.js'
import { countersSuite, ledgerSuite, overrideStoreSuite, rateLimitStoreSuite, sharedStateSuite, tokenStoreSuite } from './redis-suites.js'

// The suites test/cluster/ and test/failover/ run against other deployments, here on one Redis.
tokenStoreSuite(t, plainBackend)
countersSuite(t, plainBackend)
ledgerSuite(t, plainBackend)
rateLimitStoreSuite(t, plainBackend)
overrideStoreSuite(t, plainBackend)
sharedStateSuite(t, plainBackend)
