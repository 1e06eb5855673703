import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import type { Store } from '../../../plugins/app/store/types/index.ts'
import { keyFixture, type ContractContext } from './fixtures.ts'

export function usageContract (c: ContractContext): void {
  describe('usage', () => {
    let store: Store
    before(() => { store = c.store })
    const { newUser } = c

    const HOUR = 3_600_000
    const month = Date.UTC(2026, 10, 1)

    it('adds deltas to hourly and monthly counters, returns totals and moves lastUsedAt forward', async () => {
      const user = await newUser()
      const key = await store.createKey(user.id, keyFixture())
      const d = (hour: number, units: number, lastUsedAt = hour + 5) => ({ ownerId: user.id, keyId: key.id, hour, units, requests: 1, lastUsedAt })
      const first = await store.recordUsage([d(month, 3), d(month + HOUR, 2)])
      assert.deepEqual(first, [{ keyId: key.id, month, units: 5, requests: 2 }])
      const second = await store.recordUsage([d(month + HOUR, 4, month + 10)])
      assert.deepEqual(second, [{ keyId: key.id, month, units: 9, requests: 3 }])
      assert.deepEqual(await store.usageSeries(user.id, key.id, month, month + 2 * HOUR),
        [{ hour: month, units: 3, requests: 1 }, { hour: month + HOUR, units: 6, requests: 2 }])
      assert.deepEqual(await store.usageSeries(user.id, key.id, month + HOUR, month + 2 * HOUR), [{ hour: month + HOUR, units: 6, requests: 2 }])
      assert.equal((await store.getKey(user.id, key.id))?.lastUsedAt, month + HOUR + 5, 'lastUsedAt never moves back')
      const next = Date.UTC(2026, 11, 1)
      assert.deepEqual(await store.recordUsage([d(next, 1)]), [{ keyId: key.id, month: next, units: 1, requests: 1 }], 'a new month starts at zero')
      assert.deepEqual(await store.monthlyUsage(user.id, month), [{ keyId: key.id, month, units: 9, requests: 3 }])
      assert.deepEqual(await store.monthlyUsage(user.id, month, [key.id, 'other']), [{ keyId: key.id, month, units: 9, requests: 3 }])
      assert.deepEqual(await store.recordUsage([]), [])
    })

    it('is owner-scoped and removed with the key or the account', async () => {
      const a = await newUser()
      const b = await newUser()
      const key = await store.createKey(a.id, keyFixture())
      await store.recordUsage([{ ownerId: a.id, keyId: key.id, hour: month, units: 1, requests: 1, lastUsedAt: month }])
      assert.deepEqual(await store.usageSeries(b.id, key.id, 0, month + HOUR), [])
      assert.deepEqual(await store.monthlyUsage(b.id, month), [])
      await store.deleteKey(a.id, key.id)
      assert.deepEqual(await store.usageSeries(a.id, key.id, 0, month + HOUR), [])
      const other = await store.createKey(a.id, keyFixture())
      await store.recordUsage([{ ownerId: a.id, keyId: other.id, hour: month, units: 1, requests: 1, lastUsedAt: month }])
      await store.deleteUser(a.id)
      assert.deepEqual(await store.monthlyUsage(a.id, month), [])
    })

    it('records usage once per idempotency key', async () => {
      const user = await newUser()
      const key = await store.createKey(user.id, keyFixture())
      const delta = { ownerId: user.id, keyId: key.id, hour: month, units: 5, requests: 5, lastUsedAt: month }
      assert.deepEqual(await store.recordUsageOnce(user.id, 'idem-1', delta), { duplicate: false, total: { keyId: key.id, month, units: 5, requests: 5 } })
      assert.deepEqual(await store.recordUsageOnce(user.id, 'idem-1', delta), { duplicate: true, total: { keyId: key.id, month, units: 5, requests: 5 } })
      assert.equal((await store.recordUsageOnce(user.id, 'idem-2', delta)).total.units, 10)
    })

    it('rolls hourly usage up into days idempotently', async () => {
      const user = await newUser()
      const key = await store.createKey(user.id, keyFixture())
      const day = Date.UTC(2026, 10, 20)
      await store.recordUsage([
        { ownerId: user.id, keyId: key.id, hour: day + 3_600_000, units: 2, requests: 2, lastUsedAt: day },
        { ownerId: user.id, keyId: key.id, hour: day + 5 * 3_600_000, units: 3, requests: 1, lastUsedAt: day }
      ])
      await store.rollupDaily(day, day + 86_400_000)
      await store.rollupDaily(day, day + 86_400_000)
      assert.deepEqual(await store.usageDaily(user.id, key.id, day, day + 86_400_000), [{ hour: day, units: 5, requests: 3 }])
    })

    it('purges old hourly usage, keeping daily totals, and old idempotency records', async () => {
      const user = await newUser()
      const now = Date.now()
      const key = await store.createKey(user.id, keyFixture())
      const oldHour = Date.UTC(2020, 0, 1)
      await store.recordUsage([{ ownerId: user.id, keyId: key.id, hour: oldHour, units: 1, requests: 1, lastUsedAt: oldHour }])
      await store.rollupDaily(oldHour, oldHour + 3_600_000)
      assert.ok(await store.purgeUsageHourly(Date.UTC(2021, 0, 1), 10_000) >= 1)
      assert.deepEqual(await store.usageSeries(user.id, key.id, 0, now), [])
      assert.deepEqual(await store.usageDaily(user.id, key.id, 0, now), [{ hour: oldHour, units: 1, requests: 1 }], 'daily totals are kept')

      const delta = { ownerId: user.id, keyId: key.id, hour: month, units: 2, requests: 1, lastUsedAt: month }
      await store.recordUsageOnce(user.id, 'idem-purge', delta)
      assert.ok(await store.purgeIdempotency(Date.now() + 1000, 10_000) >= 1)
      assert.deepEqual(await store.recordUsageOnce(user.id, 'idem-purge', delta), { duplicate: false, total: { keyId: key.id, month, units: 4, requests: 2 } },
        'a purged idempotency key counts again')
    })
  })
}
