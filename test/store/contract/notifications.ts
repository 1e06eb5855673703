import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import type { Store } from '../../../plugins/app/store/types/index.ts'
import type { ContractContext } from './fixtures.ts'

export function notificationsContract (c: ContractContext): void {
  describe('notifications, webhooks and deliveries', () => {
    let store: Store
    before(() => { store = c.store })
    const { newUser } = c

    it('creates a notification once per dedupe key, lists newest first, marks read, owner-scoped', async () => {
      const a = await newUser()
      const b = await newUser()
      const n1 = await store.createNotification(a.id, { type: 'quota_80', keyId: 'k1', title: 'Quota 80%', detail: { used: 80 }, dedupeKey: 'quota_80:k1:2026-11' })
      assert.ok(n1)
      assert.equal(await store.createNotification(a.id, { type: 'quota_80', keyId: 'k1', title: 'again', detail: {}, dedupeKey: 'quota_80:k1:2026-11' }), null)
      const n2 = await store.createNotification(a.id, { type: 'expired', keyId: 'k2', title: 'Expired', detail: {}, dedupeKey: 'expired:k2' })
      assert.ok(await store.createNotification(b.id, { type: 'expired', keyId: 'k2', title: 'Expired', detail: {}, dedupeKey: 'expired:k2' }), 'dedupe is per owner')
      assert.deepEqual((await store.listNotifications(a.id, { limit: 10 })).map((n) => n.id), [n2!.id, n1.id])
      assert.deepEqual((await store.listNotifications(a.id, { limit: 10, beforeId: n2!.id })).map((n) => n.id), [n1.id])
      assert.equal(await store.markNotificationRead(b.id, n1.id, 5), null, 'B cannot read A\'s notification')
      assert.equal((await store.markNotificationRead(a.id, n1.id, 5))?.readAt, 5)
      assert.equal((await store.markNotificationRead(a.id, n1.id, 9))?.readAt, 5, 'read once')
      assert.deepEqual((await store.listNotifications(a.id, { limit: 10, unreadOnly: true })).map((n) => n.id), [n2!.id])
    })

    it('keeps one webhook per owner and one delivery per event', async () => {
      const user = await newUser()
      assert.equal(await store.getWebhook(user.id), null)
      const hook = await store.setWebhook(user.id, { url: 'https://example.com/hook', secret: 's1' })
      assert.equal(hook?.url, 'https://example.com/hook')
      assert.equal((await store.setWebhook(user.id, { url: 'https://example.com/other', secret: 's2' }))?.secret, 's2')
      const now = Date.now()
      const d = await store.enqueueDelivery({ ownerId: user.id, eventId: 'evt-' + user.id, url: 'https://example.com/other', payload: '{}' }, now)
      assert.ok(d)
      assert.equal(await store.enqueueDelivery({ ownerId: user.id, eventId: 'evt-' + user.id, url: 'x', payload: '{}' }, now), null)
      assert.ok((await store.dueDeliveries(now, 100)).some((x) => x.id === d.id))
      await store.updateDelivery(d.id, { attempts: 1, nextAttemptAt: now + 1000, lastError: 'HTTP 500' })
      assert.ok(!(await store.dueDeliveries(now, 100)).some((x) => x.id === d.id))
      await store.updateDelivery(d.id, { status: 'delivered', deliveredAt: now + 1000 })
      const done = await store.getDelivery(d.id)
      assert.deepEqual([done?.status, done?.attempts, done?.lastError], ['delivered', 1, 'HTTP 500'])
      assert.equal(await store.setWebhook(user.id, null), null)
      assert.equal(await store.getWebhook(user.id), null)
    })
  })
}
