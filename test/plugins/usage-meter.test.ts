import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { UsageMeter } from '../../plugins/app/usage/meter.ts'
import { createTestApp, ManualClock, registerUser } from '../helpers/app.ts'

const JANUARY = Date.UTC(2027, 0, 1)
const FEBRUARY = Date.UTC(2027, 1, 1)

describe('the usage meter on a real SQLite store', () => {
  it('keeps each hour\'s and month\'s charges apart, counts only the current month, and loses no charge made during a flush', async (ctx) => {
    const clock = new ManualClock(Date.UTC(2027, 0, 31, 23, 30))
    const t = await createTestApp(ctx, {}, { clock })
    const user = await registerUser(t.app)
    const created = await t.app.inject({ method: 'POST', url: '/api/keys', headers: user.headers, payload: { kind: 'issued', name: 'metered' } })
    const keyId = created.json().key.id as string
    const ownerId = user.user.id
    const meter = new UsageMeter(t.app.store, clock, { flushIntervalMs: 60_000 })
    const monthly = async (month: number) => (await t.app.store.monthlyUsage(ownerId, month, [keyId]))[0]?.units ?? 0

    assert.equal(await meter.used(ownerId, keyId), 0)
    meter.charge(ownerId, keyId, 3)
    assert.equal(meter.used(ownerId, keyId), 3, 'the process\'s own charges count before they are written')
    // Past the hour and the month: January's charges no longer count against February.
    clock.advance(40 * 60_000)
    assert.equal(await meter.used(ownerId, keyId), 0)
    meter.charge(ownerId, keyId, 2)
    assert.equal(meter.usedNow(keyId), 2)

    await meter.flush()
    assert.equal(await monthly(JANUARY), 3)
    assert.equal(await monthly(FEBRUARY), 2)
    assert.equal(meter.usedNow(keyId), 2, 'written: counted once, from the store\'s total')

    // A charge made while a batch is being written joins the next batch, not the one already taken.
    meter.charge(ownerId, keyId, 1)
    const writing = meter.flush()
    meter.charge(ownerId, keyId, 1)
    assert.equal(meter.usedNow(keyId), 4)
    await writing
    await meter.flush()
    assert.equal(await monthly(FEBRUARY), 4)
    assert.equal(meter.usedNow(keyId), 4)
    assert.deepEqual(meter.stats(), { pendingKeys: 0, flushes: 3, flushFailures: 0, flushedUnits: 7 })
  })
})
