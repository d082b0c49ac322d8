import t from 'tap'
import { SIM_CLOSE, startSimulator } from '../../src/simulator/index.js'
import { T0, fakeClock, openLive, startSim, tokenFor } from './fixtures/simulator.js'

t.test('streams roomInfo, then chat, like, gift and member in turn', async (t) => {
  const sim = await startSim(t, { eventIntervalMs: 20 })
  const token = await tokenFor(sim, { allowed_creators: ['streamer1'] })
  const live = openLive(sim, { uniqueId: '@Streamer1', jwtKey: token })
  const [room, chat, like, gift, member] = await live.received(5)

  t.match(room, { event: 'roomInfo', data: { uniqueId: 'streamer1', roomId: /^\d{19}$/, title: String, viewerCount: Number, isLive: true } })
  t.match(chat, { event: 'chat', data: { user: { uniqueId: String, nickname: String }, comment: String } })
  t.match(like, { event: 'like', data: { user: { uniqueId: String }, likeCount: Number, totalLikeCount: Number } })
  t.match(gift, { event: 'gift', data: { user: { uniqueId: String }, giftId: Number, giftName: String, repeatCount: Number, diamondCount: Number } })
  t.match(member, { event: 'member', data: { user: { uniqueId: String }, action: 'join' } })
  t.equal(sim.stats.sockets, 1)

  live.ws.close()
  await live.closed
})

t.test('closes 4000 without a uniqueId', async (t) => {
  const sim = await startSim(t)
  const live = openLive(sim, { jwtKey: await tokenFor(sim) })
  t.same(await live.closed, { code: SIM_CLOSE.BAD_REQUEST, reason: 'missing uniqueId' })
  t.equal(live.messages.length, 0)
})

t.test('closes 4003 for a token it cannot trust', async (t) => {
  const sim = await startSim(t)
  const other = await startSimulator()
  t.teardown(() => other.close())
  const foreign = await tokenFor(other)
  const cases: Array<[string, Record<string, string>]> = [
    ['garbage', { jwtKey: 'not-a-token' }],
    ['signed by another secret', { jwtKey: foreign }],
    ['no jwtKey and no apiKey', {}],
  ]
  for (const [why, query] of cases) {
    const live = openLive(sim, { uniqueId: 'streamer1', ...query })
    const closed = await live.closed
    t.equal(closed.code, SIM_CLOSE.INVALID_TOKEN, why)
    t.equal(live.messages.length, 0, `${why}: no events`)
  }
})

t.test('closes 4003 for an expired token', async (t) => {
  const clock = fakeClock()
  const sim = await startSim(t, { now: clock.now })
  const token = await tokenFor(sim, { expire_after: 60 })
  clock.set(T0 + 60_000)
  t.same(await openLive(sim, { uniqueId: 'streamer1', jwtKey: token }).closed, { code: 4003, reason: 'token expired' })
})

t.test('apiKey instead of jwtKey: a known key streams, an unknown one gets 4003', async (t) => {
  const sim = await startSim(t, { apiKeys: ['test-key'], eventIntervalMs: 20 })
  const good = openLive(sim, { uniqueId: 'anyone', apiKey: 'test-key' })
  t.match((await good.received(1))[0], { event: 'roomInfo' })
  t.equal((await openLive(sim, { uniqueId: 'anyone', apiKey: 'wrong' }).closed).code, 4003)
  good.ws.close()
  await good.closed
})

t.test('closes 4004 for a creator outside the token', async (t) => {
  const sim = await startSim(t)
  const token = await tokenFor(sim, { allowed_creators: ['streamer1'], max_websockets: 2 })
  t.same(await openLive(sim, { uniqueId: 'streamer2', jwtKey: token }).closed, { code: 4004, reason: 'creator not allowed' })
  const allowed = openLive(sim, { uniqueId: '@STREAMER1', jwtKey: token })
  t.match((await allowed.received(1))[0], { event: 'roomInfo', data: { uniqueId: 'streamer1' } })
  allowed.ws.close()
  await allowed.closed
})

t.test('closes 4005 beyond max_websockets and frees the slot when one closes', async (t) => {
  const sim = await startSim(t)
  const token = await tokenFor(sim, { max_websockets: 2 })
  const first = openLive(sim, { uniqueId: 'a1', jwtKey: token })
  const second = openLive(sim, { uniqueId: 'b2', jwtKey: token })
  await Promise.all([first.received(1), second.received(1)])

  t.same(await openLive(sim, { uniqueId: 'c3', jwtKey: token }).closed, { code: 4005, reason: 'too many connections' })
  t.equal(sim.stats.sockets, 2, 'the first two stay open')

  const otherToken = await tokenFor(sim)
  const other = openLive(sim, { uniqueId: 'a1', jwtKey: otherToken })
  await other.received(1)
  t.pass('another token has its own limit')

  first.ws.close()
  await first.closed
  const again = openLive(sim, { uniqueId: 'c3', jwtKey: token })
  t.match((await again.received(1))[0], { event: 'roomInfo' }, 'a closed socket frees its slot')

  for (const live of [second, other, again]) live.ws.close()
  await Promise.all([second.closed, other.closed, again.closed])
})

t.test('closes 4003 when the token expires while the socket is open', async (t) => {
  const clock = fakeClock()
  const sim = await startSim(t, { now: clock.now, eventIntervalMs: 10_000 })
  const token = await tokenFor(sim, { expire_after: 1 })
  clock.set(T0 + 900) // 100 ms of life left
  const live = openLive(sim, { uniqueId: 'streamer1', jwtKey: token })
  await live.received(1)
  t.same(await live.closed, { code: SIM_CLOSE.INVALID_TOKEN, reason: 'token expired' })
  t.equal(sim.stats.sockets, 0)
})

t.test('close() ends live sockets promptly', async (t) => {
  const sim = await startSim(t, { eventIntervalMs: 20 })
  const live = openLive(sim, { uniqueId: 'streamer1', jwtKey: await tokenFor(sim) })
  await live.received(2)
  const started = performance.now()
  await sim.close()
  await live.closed
  t.ok(performance.now() - started < 1000, 'closed within a second')
  t.equal(sim.stats.sockets, 0)
})
