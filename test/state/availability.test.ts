import t from 'tap'
import { Availability } from '../../src/state/availability.js'

t.test('a probe sent before a recovery cannot undo it by failing late', async (t) => {
  const a = new Availability()
  t.same(a.observe('up'), { from: 'starting', to: 'up' })
  t.same(a.observe('down'), { from: 'up', to: 'down' }, 'the connection closed: current evidence')
  const probe = a.probe()
  const verify = a.probe()
  t.same(a.answer(verify, 'up'), { from: 'down', to: 'up' }, 'the write after the reconnect went through')
  t.equal(a.answer(probe, 'slow'), undefined, 'the older probe timing out afterwards changes nothing')
  t.equal(a.answer(probe, 'down'), undefined)
  t.equal(a.condition, 'up')
})

t.test('a probe sent before an outage cannot end it by succeeding late', async (t) => {
  const a = new Availability()
  a.observe('up')
  const probe = a.probe()
  a.observe('replica')
  t.equal(a.answer(probe, 'up'), undefined)
  t.equal(a.condition, 'replica')
  t.same(a.answer(a.probe(), 'up'), { from: 'replica', to: 'up' }, 'a probe sent during the outage ends it')
})

t.test('suspicion: only from up, and a probe sent after it decides (up again, or an outage)', async (t) => {
  const a = new Availability()
  t.equal(a.suspect(), undefined, 'not while starting')
  a.observe('up')
  const before = a.probe()
  t.same(a.suspect(), { from: 'up', to: 'suspect' })
  t.equal(a.suspect(), undefined, 'once')
  t.equal(a.answer(before, 'up'), undefined, 'a probe sent before the failure does not clear it')
  t.same(a.answer(a.probe(), 'up'), { from: 'suspect', to: 'up' }, 'confirmed: up again')
  a.suspect()
  t.same(a.answer(a.probe(), 'slow'), { from: 'suspect', to: 'slow' }, 'or not answering in time')
  t.equal(a.suspect(), undefined, 'not while unavailable')
})

t.test('once unavailable, a timeout says nothing new; only a write that goes through ends it', async (t) => {
  const a = new Availability()
  a.observe('up')
  a.observe('replica')
  t.equal(a.answer(a.probe(), 'slow'), undefined)
  t.equal(a.condition, 'replica')
  t.same(a.observe('down'), { from: 'replica', to: 'down' }, 'a step within the outage (the caller does not log it)')
  t.equal(a.observe('down'), undefined, 'the same evidence twice is no change')
})

t.test('starting: a first probe that times out leaves it starting (open() then calls it down)', async (t) => {
  const a = new Availability()
  t.equal(a.answer(a.probe(), 'slow'), undefined)
  t.same(a.observe('down'), { from: 'starting', to: 'down' })
})
