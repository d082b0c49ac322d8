import fc from 'fast-check'
import t from 'tap'
import type { Credential } from '../../src/auth/authenticator.js'
import { ERRORS } from '../../src/errors.js'
import { BrokerError } from '../../src/errors.js'
import { grantFor } from '../../src/policy/grant.js'
import { parseTokenRequest } from '../../src/policy/token-request.js'
import { buildBroker, rememberSecret, tenant, USER_SECRET } from '../helpers/broker.js'
import { SignJWT } from 'jose'

const NAMES = ['a1', 'a2', 'a3', 'b1', 'b2', 'zz_top', 'x.y']
const name = fc.constantFrom(...NAMES)
/** A creator as a caller might write it: known or not, with `@` or upper case, or not a username at all. */
const wantedName = fc.oneof(name, name.map((n) => `@${n.toUpperCase()}`), fc.constantFrom('q', 'no spaces', 'x'.repeat(30), ''), fc.string({ maxLength: 6 }))
const claim = fc.oneof(
  fc.constant(undefined),
  fc.uniqueArray(name, { maxLength: 4 }),
  fc.uniqueArray(name, { maxLength: 4 }).map((l) => l.join(', ')),
  fc.constantFrom(42, null, { a: 1 }, ['a1', 7]),
)
interface Policy {
  allowed: '*' | string[]
  allowUnrestricted: boolean
  withClaim: boolean
  expireMax: number
  wsMax: number
}
const policy: fc.Arbitrary<Policy> = fc.record({
  allowed: fc.oneof(fc.constant('*' as const), fc.uniqueArray(name, { maxLength: 5 })),
  allowUnrestricted: fc.boolean(),
  withClaim: fc.boolean(),
  expireMax: fc.integer({ min: 30, max: 7200 }),
  wsMax: fc.integer({ min: 1, max: 5 }),
})
/** A body: mostly the right shape with random values, sometimes anything at all. */
const body = fc.oneof(
  { weight: 4, arbitrary: fc.record({ allowed_creators: fc.array(wantedName, { maxLength: 5 }), expire_after: fc.integer({ min: -10, max: 10_000 }), max_websockets: fc.integer({ min: -1, max: 10 }) }, { requiredKeys: [] }) },
  { weight: 1, arbitrary: fc.jsonValue() },
  { weight: 1, arbitrary: fc.record({ expire_after: fc.oneof(fc.double(), fc.string()), colour: fc.string() }, { requiredKeys: [] }) },
)

function tenantFor(p: Policy) {
  return tenant('acme', {
    auth: { jwt: { issuer: 'https://idp/', secret: USER_SECRET, ...(p.withClaim && { creatorsClaim: 'creators' }) } },
    creators: { allowed: p.allowed, allowUnrestricted: p.allowUnrestricted },
    token: { expireAfter: { max: p.expireMax }, maxWebsockets: { max: p.wsMax } },
  })
}

/** What this user may have at most: the tenant's list ∩ the claim (null: any creator). */
function ceiling(p: Policy, userClaim: unknown): Set<string> | null {
  const tenantSet = p.allowed === '*' ? null : new Set(p.allowed)
  if (!p.withClaim) return tenantSet
  const claimed = Array.isArray(userClaim)
    ? userClaim.filter((c): c is string => typeof c === 'string')
    : typeof userClaim === 'string' ? userClaim.split(/[\s,]+/) : []
  const set = new Set<string>(claimed.filter((c) => NAMES.includes(c)))
  return tenantSet === null ? set : new Set([...set].filter((c) => tenantSet.has(c)))
}

t.test('grantFor never grants more than tenant ∩ user, and refuses only with a contract 4xx', async (t) => {
  fc.assert(
    fc.property(policy, claim, body, (p, userClaim, raw) => {
      const tn = tenantFor(p)
      const credential: Credential = { mode: 'jwt', tenantId: 'acme', subject: 'u1', claims: { sub: 'u1', ...(userClaim !== undefined && { creators: userClaim }) } }
      let grant
      try {
        grant = grantFor(tn, credential, 'u1', parseTokenRequest(raw))
      } catch (err) {
        if (!(err instanceof BrokerError) || err.statusCode < 400 || err.statusCode >= 500) throw err
        return
      }
      const max = ceiling(p, userClaim)
      if (grant.creators === null) {
        if (max !== null || !p.allowUnrestricted) throw new Error(`an unrestricted token beyond the policy: ${JSON.stringify({ p, userClaim })}`)
      } else {
        if (grant.creators.length === 0) throw new Error('a token for no creator at all')
        for (const c of grant.creators) if (max !== null && !max.has(c)) throw new Error(`creator ${c} beyond the policy`)
      }
      if (grant.expireAfter > p.expireMax || grant.expireAfter < 30) throw new Error(`expire_after ${grant.expireAfter}`)
      if (grant.maxWebsockets > p.wsMax || grant.maxWebsockets < 1) throw new Error(`max_websockets ${grant.maxWebsockets}`)
    }),
    { numRuns: 3000 },
  )
  t.pass('3000 policies, users and bodies')
})

t.test('through the route: every generated request gets a 200 within the policy or a contract 4xx', async (t) => {
  // Three tenants with different policies in one broker, told apart by issuer.
  const issuers = { list: 'https://list/', any: 'https://any/', anyClaim: 'https://any-claim/' }
  const tenants = [
    tenant('list', { auth: { jwt: { issuer: issuers.list, secret: USER_SECRET, creatorsClaim: 'creators' } }, creators: { allowed: ['a1', 'a2', 'b1'] }, token: { expireAfter: { max: 900 }, maxWebsockets: { max: 2 } } }),
    tenant('any', { auth: { jwt: { issuer: issuers.any, secret: USER_SECRET } }, creators: { allowed: '*', allowUnrestricted: true }, limits: { perSubjectPerMinute: 100_000, perTenantPerMinute: 100_000 } }),
    tenant('anyclaim', { auth: { jwt: { issuer: issuers.anyClaim, secret: USER_SECRET, creatorsClaim: 'creators' } }, creators: { allowed: '*' } }),
  ].map((x) => ({ ...x, limits: { ...x.limits, perSubjectPerMinute: 100_000, perTenantPerMinute: 100_000 } }))
  const b = await buildBroker(t, { tenants, sim: { perMinute: 100_000, perDay: 1_000_000 } })
  const key = new TextEncoder().encode(USER_SECRET)
  const maxOf: Record<string, Set<string> | null> = { list: new Set(['a1', 'a2', 'b1']), any: null, anyclaim: null }
  await fc.assert(
    fc.asyncProperty(fc.constantFrom('list', 'any', 'anyclaim'), claim, body, fc.integer({ min: 0, max: 5 }), async (id, userClaim, raw, user) => {
      const issuer = id === 'list' ? issuers.list : id === 'any' ? issuers.any : issuers.anyClaim
      const jwt = await new SignJWT({ sub: `u${user}`, ...(userClaim !== undefined && { creators: userClaim }) })
        .setProtectedHeader({ alg: 'HS256' }).setIssuer(issuer).setExpirationTime('5m').sign(key)
      rememberSecret(jwt)
      const res = await b.token(jwt, raw === undefined ? {} : raw)
      if (res.status === 200) {
        const got: string[] | null = res.body.data.allowed_creators
        const claimSet = id === 'any' ? null : ceiling({ allowed: '*', allowUnrestricted: false, withClaim: true, expireMax: 0, wsMax: 0 }, userClaim)
        const tenantSet = maxOf[id] as Set<string> | null
        if (got === null) return id === 'any'
        return got.every((c) => (tenantSet === null || tenantSet.has(c)) && (claimSet === null || claimSet.has(c)))
      }
      const known = (ERRORS as Record<string, { status: number }>)[res.body?.code]
      return res.status >= 400 && res.status < 500 && known?.status === res.status && res.body.status_code === res.status && typeof res.body.message === 'string'
    }),
    { numRuns: 150 },
  )
  t.pass('150 requests')
})
