import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { newId } from '../../../plugins/app/store/ids.ts'
import type { Store } from '../../../plugins/app/store/types/index.ts'
import { keyFixture, type ContractContext } from './fixtures.ts'

export function opsContract (c: ContractContext): void {
  describe('operations: job runs, snapshots, counts and leases', () => {
    let store: Store
    before(() => { store = c.store })
    const { newUser } = c

    it('records job runs, stats snapshots and leases', async () => {
      const job = 'job-' + newId()
      await store.recordJobRun({ job, startedAt: 1000, durationMs: 5, ok: true, result: { n: 1 }, error: null })
      await store.recordJobRun({ job, startedAt: 2000, durationMs: 7, ok: false, result: {}, error: 'boom' })
      const runs = await store.jobRuns(job, 10)
      assert.deepEqual(runs.map((r) => [r.startedAt, r.ok, r.error]), [[2000, false, 'boom'], [1000, true, null]])
      const at = Date.UTC(2030, 0, 1) + Math.floor(Math.random() * 1e6)
      await store.saveStatsSnapshot({ at, data: { users: 3 } })
      await store.saveStatsSnapshot({ at, data: { users: 4 } })
      assert.deepEqual(await store.statsSnapshots(at, at + 1, 10), [{ at, data: { users: 4 } }])
      assert.ok(await store.purgeStatsSnapshots(at + 1) >= 1)
      const lease = 'lease-' + newId()
      assert.equal(await store.acquireLease(lease, 'p1', 1000, 0), true)
      assert.equal(await store.acquireLease(lease, 'p2', 1000, 10), false, 'held by another')
      assert.equal(await store.acquireLease(lease, 'p1', 1000, 20), true, 'renewed by its holder')
      assert.equal(await store.acquireLease(lease, 'p2', 1000, 2000), true, 'taken after expiry')
      await store.releaseLease(lease, 'p2')
      assert.equal(await store.acquireLease(lease, 'p3', 1000, 2001), true)
    })

    it('counts users, keys, active keys, live sessions, unread notifications and pending deliveries system-wide', async () => {
      const now = Date.now()
      const session = (userId: string, expiresAt: number) =>
        store.createSession({ userId, expiresAt, userAgent: null, ip: null }, `rt-count-${newId()}`)
      const notify = (ownerId: string, dedupeKey: string) =>
        store.createNotification(ownerId, { type: 'expired', keyId: null, title: 'Expired', detail: {}, dedupeKey })
      const enqueue = (ownerId: string) =>
        store.enqueueDelivery({ ownerId, eventId: `evt-count-${newId()}`, url: 'https://example.com/hook', payload: '{}' }, now)
      const earlier = await store.systemCounts(now)

      const user = await newUser()
      await store.createKey(user.id, keyFixture())
      await store.createKey(user.id, keyFixture({ status: 'disabled' }))
      await session(user.id, now + 60_000)
      await store.revokeSession(user.id, (await session(user.id, now + 60_000)).id, now)
      await session(user.id, now - 1)
      await notify(user.id, 'count-unread')
      await store.markNotificationRead(user.id, (await notify(user.id, 'count-read'))!.id, now)
      await enqueue(user.id)
      await store.updateDelivery((await enqueue(user.id))!.id, { status: 'delivered', deliveredAt: now })

      const later = await store.systemCounts(now)
      const added = Object.fromEntries(Object.entries(later).map(([name, n]) => [name, n - earlier[name as keyof typeof earlier]]))
      assert.deepEqual(added, { users: 1, keys: 2, activeKeys: 1, sessions: 1, unreadNotifications: 1, pendingDeliveries: 1 },
        'a revoked or expired session, a read notification and a delivered delivery are not counted')
    })
  })
}
