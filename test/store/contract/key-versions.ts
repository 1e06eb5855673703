import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { DuplicateError } from '../../../plugins/app/store/errors.ts'
import { newId } from '../../../plugins/app/store/ids.ts'
import type { Store } from '../../../plugins/app/store/types/index.ts'
import { keyFixture, type ContractContext } from './fixtures.ts'

export function keyVersionsContract (c: ContractContext): void {
  describe('key versions, rotation and stats', () => {
    let store: Store
    before(() => { store = c.store })
    const { newUser } = c

    it('creates the first version with the key and its audit event in one step', async () => {
      const user = await newUser()
      const key = await store.createKey(user.id, keyFixture({ recoverable: true }), { hash: 'v1-' + user.id, start: 'kw_v1', ciphertext: 'sealed-1' }, { action: 'key.created', ip: '10.0.0.1' })
      assert.equal(key.recoverable, true)
      const versions = await store.listKeyVersions(user.id, key.id)
      assert.equal(versions.length, 1)
      assert.deepEqual({ ...versions[0], createdAt: 0 }, {
        keyId: key.id, ownerId: user.id, version: 1, hash: 'v1-' + user.id, start: 'kw_v1', ciphertext: 'sealed-1', createdAt: 0, retiredAt: null, graceEndsAt: null
      })
      const events = await store.auditChain(user.id, 0, 10)
      assert.equal(events.length, 1)
      assert.equal(events[0]?.action, 'key.created')
      assert.equal(events[0]?.keyId, key.id)
      assert.deepEqual(await store.listKeyVersions(newId(), key.id), [], 'versions are owner-scoped')
    })

    it('a failed create leaves no version and no audit event behind', async () => {
      const user = await newUser()
      const key = await store.createKey(user.id, keyFixture(), { hash: 'dup-' + user.id, start: 's', ciphertext: null })
      await assert.rejects(store.createKey(user.id, keyFixture({ hash: key.hash }), { hash: 'other-' + user.id, start: 's', ciphertext: null }, { action: 'key.created' }), DuplicateError)
      assert.equal(await store.getKeyVersion(user.id, key.id, 2), null)
      assert.deepEqual(await store.auditChain(user.id, 0, 10), [])
      assert.equal(await store.findVersionByHash(user.id, 'other-' + user.id), null)
    })

    it('rotates: the old version is retired with its grace, still found by hash, and old versions are pruned', async () => {
      const user = await newUser()
      const key = await store.createKey(user.id, keyFixture({ hash: 'h1-' + user.id }), { hash: 'h1-' + user.id, start: 's1', ciphertext: null })
      const now = Date.now()
      let current = key
      for (let v = 2; v <= 14; v++) {
        const rotated = await store.rotateKey(user.id, key.id, {
          patch: { version: v, hash: `h${v}-${user.id}`, start: `s${v}` },
          next: { hash: `h${v}-${user.id}`, start: `s${v}`, ciphertext: null },
          graceEndsAt: now + v * 1000,
          keepPrevious: 10,
          now
        }, { action: 'key.rotated', detail: { version: v } })
        assert.ok(rotated)
        current = rotated
      }
      assert.equal(current.version, 14)
      assert.equal(current.hash, 'h14-' + user.id)
      assert.deepEqual((await store.getKey(user.id, key.id))?.version, 14)
      const versions = await store.listKeyVersions(user.id, key.id)
      assert.deepEqual(versions.map((v) => v.version), [14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4], 'the current version and 10 previous')
      assert.equal(versions[0]?.retiredAt, null)
      assert.equal(versions[1]?.retiredAt, now)
      assert.equal(versions[1]?.graceEndsAt, now + 14 * 1000)
      const old = await store.findVersionByHash(user.id, 'h13-' + user.id)
      assert.equal(old?.key.id, key.id)
      assert.equal(old?.version.version, 13)
      assert.equal((await store.findVersionByHash(user.id, 'h14-' + user.id))?.version.retiredAt, null)
      assert.equal(await store.findVersionByHash(user.id, 'h2-' + user.id), null, 'pruned versions are gone')
      assert.equal(await store.findVersionByHash(newId(), 'h14-' + user.id), null, 'owner-scoped')
      assert.equal(await store.rotateKey(newId(), key.id, {
        patch: { version: 15 }, next: { hash: null, start: 'x', ciphertext: null }, graceEndsAt: null, keepPrevious: 10, now
      }), null, 'another owner cannot rotate')
      assert.equal((await store.auditChain(user.id, 0, 100)).length, 13)
      assert.equal(await store.deleteKey(user.id, key.id), true)
      assert.deepEqual(await store.listKeyVersions(user.id, key.id), [])
    })

    it('counts keys by status, kind, service and environment, expiring and rotation due', async () => {
      const user = await newUser()
      const now = Date.now()
      await store.createKey(user.id, keyFixture({ service: 'stripe', expiresAt: now + 86_400_000 }))
      await store.createKey(user.id, keyFixture({ service: 'stripe', environment: 'production', rotationDueAt: now - 1 }))
      await store.createKey(user.id, keyFixture({ kind: 'held', hash: null, status: 'disabled', expiresAt: now + 86_400_000 }))
      await store.createKey(user.id, keyFixture({ expiresAt: now + 30 * 86_400_000 }))
      const stats = await store.keyStats(user.id, now)
      assert.equal(stats.total, 4)
      assert.deepEqual(stats.byStatus, { active: 3, disabled: 1 })
      assert.deepEqual(stats.byKind, { held: 1, issued: 3 })
      assert.deepEqual(stats.byService, { none: 2, stripe: 2 })
      assert.deepEqual(stats.byEnvironment, { development: 3, production: 1 })
      assert.equal(stats.expiringSoon, 1, 'active keys expiring within 7 days')
      assert.equal(stats.rotationDue, 1)
      assert.equal((await store.keyStats(newId(), now)).total, 0)
    })
  })
}
