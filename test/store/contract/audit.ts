import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { anonymousOwner, GENESIS_HASH } from '../../../plugins/app/store/shared.ts'
import type { Store } from '../../../plugins/app/store/types/index.ts'
import type { ContractContext } from './fixtures.ts'

export function auditContract (c: ContractContext): void {
  describe('audit trail', () => {
    let store: Store
    before(() => { store = c.store })
    const { newUser, verifyChain } = c

    it('chains each owner\'s events and lists them newest first with filters', async () => {
      const a = await newUser()
      const b = await newUser()
      const e1 = await store.appendAudit(a.id, { action: 'auth.login', ip: '1.2.3.4', sessionId: 's1' })
      await store.appendAudit(b.id, { action: 'auth.login' })
      const e2 = await store.appendAudit(a.id, { action: 'key.revealed', keyId: 'k1', detail: { version: 2, nested: { z: 1, a: 2 } } })
      const e3 = await store.appendAudit(a.id, { action: 'key.updated', keyId: 'k2' })
      assert.deepEqual([e1.seq, e2.seq, e3.seq], [1, 2, 3])
      assert.equal(e2.prevHash, e1.hash)
      const chain = await store.auditChain(a.id, 0, 100)
      assert.deepEqual(chain, [e1, e2, e3])
      await verifyChain(a.id, 3)
      assert.deepEqual((await store.auditChain(a.id, 1, 1)).map((e) => e.seq), [2], 'batched reads')
      assert.deepEqual((await store.listAudit(a.id, { limit: 10 })).map((e) => e.seq), [3, 2, 1])
      assert.deepEqual((await store.listAudit(a.id, { limit: 10, action: 'key.revealed' })).map((e) => e.seq), [2])
      assert.deepEqual((await store.listAudit(a.id, { limit: 10, keyId: 'k2' })).map((e) => e.seq), [3])
      assert.deepEqual((await store.listAudit(a.id, { limit: 2 })).map((e) => e.seq), [3, 2])
      assert.deepEqual((await store.listAudit(a.id, { limit: 10, beforeSeq: 2 })).map((e) => e.seq), [1])
      assert.equal((await store.listAudit(b.id, { limit: 10 })).length, 1, 'owner-scoped')
    })

    it('records user, session and vault changes in the same step when asked', async () => {
      const user = await newUser()
      await store.updateUser(user.id, { passwordHash: 'x' }, { action: 'auth.password_changed' })
      const s = await store.createSession({ userId: user.id, expiresAt: Date.now() + 60_000, userAgent: null, ip: null }, 'rt-audit-' + user.id)
      await store.revokeSession(user.id, s.id, Date.now(), { action: 'auth.logout', sessionId: s.id })
      await store.revokeSessions(user.id, Date.now(), undefined, { action: 'auth.logout_all' })
      const actions = (await store.auditChain(user.id, 0, 10)).map((e) => e.action)
      assert.deepEqual(actions, ['auth.password_changed', 'auth.logout', 'auth.logout_all'])
    })

    it('keeps a deleted account\'s events anonymised and still chained', async () => {
      const user = await newUser()
      await store.appendAudit(user.id, { action: 'auth.login', ip: '9.9.9.9', sessionId: 'sess', detail: { email: user.email } })
      await store.appendAudit(user.id, { action: 'key.created', keyId: 'k' })
      await store.deleteUser(user.id)
      assert.deepEqual(await store.listAudit(user.id, { limit: 10 }), [])
      const kept = await store.auditChain(anonymousOwner(user.id), 0, 10)
      assert.equal(kept.length, 2)
      assert.ok(kept.every((e) => e.anonymised && e.ip === null && e.sessionId === null && Object.keys(e.detail).length === 0))
      assert.ok(!JSON.stringify(kept).includes(user.email) && !JSON.stringify(kept).includes(user.id))
      await verifyChain(anonymousOwner(user.id), 2)
    })

    it('prunes old audit events and anchors the chain so it still verifies', async () => {
      const user = await newUser()
      const e1 = await store.appendAudit(user.id, { action: 'a' })
      const e2 = await store.appendAudit(user.id, { action: 'b' })
      await store.appendAudit(user.id, { action: 'c' })
      assert.deepEqual(await store.auditAnchor(user.id), { seq: 0, hash: GENESIS_HASH })
      assert.ok(await store.purgeAudit(e2.createdAt + 1, 10_000) >= 2)
      const anchor = await store.auditAnchor(user.id)
      assert.ok(anchor.seq >= e2.seq)
      const rest = await store.auditChain(user.id, 0, 10)
      if (rest.length > 0) assert.equal(rest[0]!.prevHash, anchor.hash)
      assert.ok(!rest.some((e) => e.id === e1.id))
      await store.purgeAudit(Date.now() + 1000, 10_000)
      const next = await store.appendAudit(user.id, { action: 'd' })
      const last = await store.auditAnchor(user.id)
      assert.deepEqual([next.seq, next.prevHash], [last.seq + 1, last.hash], 'after a full prune the chain continues from its anchor')
      await verifyChain(user.id, 1)
    })
  })
}
