import { connect, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { acme, configFor, userJwt } from '../helpers/broker.js'
import { redisForTest, TEST_REDIS_URL } from '../helpers/redis.js'
import { startScriptedUpstream, tokenAnswer, type ScriptedAnswer } from '../helpers/scripted-upstream.js'
import { startReplica, type Replica } from '../state/replicas.js'

/**
 * Contract section 2, "One failure per burst": a mint that fails is answered to every request of the burst, in one
 * process and across replicas, one upstream call per key per burst. Over real sockets, against an upstream that fails
 * at once: the burst's requests reach the broker over a few milliseconds, some after the failure came back. A request
 * sent after its client saw the failure is another burst: it calls again.
 */
const BURST = 20

async function listening(t: Test, replica: Replica): Promise<number> {
  await replica.app.listen({ host: '127.0.0.1', port: 0 })
  return (replica.app.server.address() as { port: number }).port
}

/** `BURST` connections opened first, then one request written on each in the same tick; each answer's status and code. */
async function burst(ports: number[], jwt: string, creator: string): Promise<Array<{ status: number; code: string | undefined }>> {
  const body = JSON.stringify({ allowed_creators: [creator] })
  const request = `POST /v1/token HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${jwt}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`
  const sockets = await Promise.all(
    Array.from({ length: BURST }, (_, i) => new Promise<Socket>((resolve, reject) => connect(ports[i % ports.length] as number, '127.0.0.1', function (this: Socket) { resolve(this) }).once('error', reject))),
  )
  const answers = sockets.map(
    (s) =>
      new Promise<{ status: number; code: string | undefined }>((resolve) => {
        let text = ''
        s.on('data', (d) => (text += String(d)))
        s.on('close', () => resolve({ status: Number(text.slice(9, 12)), code: /"code":"([A-Z_]+)"/.exec(text)?.[1] }))
      }),
  )
  for (const s of sockets) s.write(request)
  return Promise.all(answers)
}

const failures: Array<[string, ScriptedAnswer, string]> = [
  ['a 500', { status: 500, body: { status_code: 500, message: 'boom' } }, 'UPSTREAM_ERROR'],
  ['an answer that is not JSON', { status: 200, body: 'not json' }, 'UPSTREAM_ERROR'],
  ['a 200 without a token', { status: 200, body: { status_code: 0, data: {} } }, 'UPSTREAM_ERROR'],
]

for (const topology of ['memory', 'redis, one replica', 'redis, two replicas'] as const) {
  t.test(`${topology}: a burst over sockets against an upstream that fails at once costs one call, and a request after its answer calls again`, async (t) => {
    const up = await startScriptedUpstream(t)
    const prefix = topology === 'memory' ? undefined : (await redisForTest(t)).prefix
    const config = configFor(up.url, [acme({ creators: { allowed: ['a1', 'a2', 'a3'] }, limits: { perSubjectPerMinute: 1000 } })], prefix === undefined ? {} : { redisUrl: TEST_REDIS_URL })
    const count = topology === 'redis, two replicas' ? 2 : 1
    const replicas = await Promise.all(Array.from({ length: count }, () => startReplica(t, config, prefix === undefined ? {} : { keyPrefix: prefix })))
    const ports = await Promise.all(replicas.map((r) => listening(t, r)))
    const jwt = await userJwt('burst-user')
    // Warm: the code paths compiled and connections to the upstream open, as in a broker that has served a while.
    up.autoAnswer(() => tokenAnswer(Math.floor(Date.now() / 1000), 600))
    for (const r of replicas) for (let i = 0; i < 5; i++) t.equal((await r.token(`warm-${i}`)).status, 200)
    for (const [what, failure, code] of failures) {
      const creator = ['a1', 'a2', 'a3'][failures.findIndex(([w]) => w === what)] as string
      up.autoAnswer(() => failure)
      const before = up.calls
      const answers = await burst(ports, jwt, creator)
      t.same(new Set(answers.map((a) => `${a.status} ${a.code}`)), new Set([`502 ${code}`]), `${what}: every request of the burst gets its failure`)
      t.equal(up.calls - before, 1, `${what}: one upstream call for the burst of ${BURST}`)
      // Its client has seen the failure: what it sends now is a new request, and tik.tools is asked again.
      up.autoAnswer(() => tokenAnswer(Math.floor(Date.now() / 1000), 600))
      const again = await replicas[0]!.token('burst-user', { allowed_creators: [creator] })
      t.equal(again.status, 200, `${what}: the next request after the answers mints`)
      t.equal(up.calls - before, 2)
    }
  })
}

/** Two replicas on one Redis (their own key prefix), an upstream the test scripts, one user. */
async function twoReplicas(t: Test) {
  const up = await startScriptedUpstream(t)
  const { prefix } = await redisForTest(t)
  const config = configFor(up.url, [acme({ limits: { perSubjectPerMinute: 1000 } })], { redisUrl: TEST_REDIS_URL, adminToken: 'admin-token-for-burst-tests-0123' })
  const [a, b] = await Promise.all([startReplica(t, config, { keyPrefix: prefix }), startReplica(t, config, { keyPrefix: prefix })])
  const ok = () => up.autoAnswer(() => tokenAnswer(Math.floor(Date.now() / 1000), 600))
  const fail = () => up.autoAnswer(() => ({ status: 500, body: { status_code: 500, message: 'boom' } }))
  return { up, a: a as Replica, b: b as Replica, ok, fail }
}

t.test('two replicas: a request sent after its client saw the failure (from either replica) calls again, on either replica', async (t) => {
  const { up, a, b, ok, fail } = await twoReplicas(t)
  for (const [first, second] of [[a, b], [b, a]] as const) {
    for (const retryOn of [a, b]) {
      fail()
      const before = up.calls
      const held = first.token('u1')
      await new Promise((r) => setTimeout(r, 15))
      // B waits on A's lock while A holds its failure: it answers when A does, not before.
      const waiter = await second.token('u1')
      t.equal(waiter.status, 502)
      t.equal((await held).status, 502)
      t.equal(up.calls - before, 1, 'one call for both')
      ok()
      const retry = await retryOn.token('u1')
      t.equal(retry.status, 200, 'the retry after the 502 is a new request: minted')
      t.equal(up.calls - before, 2)
      // The next round's key: a new creator set would do too; the purge keeps the user and resets what is cached.
      t.equal((await a.app.inject({ method: 'DELETE', url: '/admin/tenants/acme/subjects/u1/tokens', headers: { authorization: 'Bearer admin-token-for-burst-tests-0123' } })).statusCode, 204)
    }
  }
})

t.test('two replicas: after a failure, two retries at once on both replicas share one new mint (the old failure is no one else\'s answer)', async (t) => {
  const { up, a, b, ok, fail } = await twoReplicas(t)
  for (let round = 0; round < 4; round++) {
    fail()
    t.equal((await a.token(`r${round}`)).status, 502)
    ok()
    const before = up.calls
    const [onA, onB] = await Promise.all([a.token(`r${round}`), b.token(`r${round}`)])
    t.same([onA.status, onB.status], [200, 200], `round ${round}: both served`)
    t.equal(onA.body.data.token, onB.body.data.token, 'the same new token')
    t.equal(up.calls - before, 1, 'one call')
  }
})

for (const mode of ['memory', 'redis'] as const) {
  t.test(`${mode}: a purge while a failure is held: the next request after its 204 mints anew (contract: "the next request mints anew")`, async (t) => {
    const up = await startScriptedUpstream(t)
    const prefix = mode === 'redis' ? (await redisForTest(t)).prefix : undefined
    const admin = 'admin-token-for-burst-tests-0123'
    const config = configFor(up.url, [acme({ limits: { perSubjectPerMinute: 1000 } })], { adminToken: admin, ...(prefix !== undefined && { redisUrl: TEST_REDIS_URL }) })
    const replica = await startReplica(t, config, prefix === undefined ? {} : { keyPrefix: prefix })
    const held = replica.token('u1')
    ;(await up.next()).answer({ status: 500, body: { status_code: 500, message: 'boom' } })
    // The failure has come back (its warning is logged as it does): it is held now, for 100 ms.
    for (let waited = 0; !replica.logs.some((l) => l.includes('upstream mint failed')); waited += 2) {
      if (waited > 2000) throw new Error('the failure never came back')
      await new Promise((r) => setTimeout(r, 2))
    }
    const purge = await replica.app.inject({ method: 'DELETE', url: '/admin/tenants/acme/subjects/u1/tokens', headers: { authorization: `Bearer ${admin}` } })
    t.equal(purge.statusCode, 204, 'a mint was in flight: purged')
    up.autoAnswer(() => tokenAnswer(Math.floor(Date.now() / 1000), 600))
    const next = await replica.token('u1')
    t.equal(next.status, 200, 'not the failure held from before the purge')
    t.equal((await held).status, 502, 'the request that was waiting still gets its failure')
    t.equal(up.calls, 2)
  })
}

t.test('a refusal made before any call (the circuit open) is answered at once, not held', async (t) => {
  const up = await startScriptedUpstream(t)
  const replica = await startReplica(t, configFor(up.url, [acme({ limits: { perSubjectPerMinute: 1000 } })]))
  up.autoAnswer(() => ({ status: 500, body: { status_code: 500, message: 'boom' } }))
  for (let i = 0; i < 5; i++) t.equal((await replica.token(`c${i}`)).status, 502)
  const refusals = []
  for (let i = 0; i < 5; i++) refusals.push(await replica.token(`c-open-${i}`))
  for (const open of refusals) {
    t.equal(open.status, 503)
    t.match(open.body.message, /circuit is open/)
  }
  const fastest = Math.min(...refusals.map((r) => r.ms))
  t.ok(fastest < 90, `answered in ${fastest.toFixed(0)} ms at best (a held failure takes 100 at least)`)
  t.equal(up.calls, 5)
})
