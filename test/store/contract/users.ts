import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { DuplicateError } from '../../../plugins/app/store/errors.ts'
import { newId } from '../../../plugins/app/store/ids.ts'
import { anonymousOwner, purgeAccount } from '../../../plugins/app/store/shared.ts'
import type { Store } from '../../../plugins/app/store/types/index.ts'
import { keyFixture, type ContractContext } from './fixtures.ts'

export function usersContract (c: ContractContext): void {
  describe('users', () => {
    let store: Store
    before(() => { store = c.store })
    const { newUser } = c

    it('creates, reads by id and email, updates and deletes', async () => {
      const user = await newUser()
      assert.match(user.id, /^[0-9a-f]{24}$/)
      assert.deepEqual(await store.getUser(user.id), user)
      assert.deepEqual(await store.findUserByEmail(user.email), user)
      const updated = await store.updateUser(user.id, { name: 'Grace', role: 'admin', passwordHash: 'new' })
      assert.equal(updated?.name, 'Grace')
      assert.equal(updated?.role, 'admin')
      assert.equal(updated?.passwordHash, 'new')
      assert.equal(updated?.email, user.email)
      assert.ok((updated?.updatedAt ?? 0) >= user.updatedAt)
      assert.equal(await store.deleteUser(user.id), true)
      assert.equal(await store.getUser(user.id), null)
      assert.equal(await store.findUserByEmail(user.email), null)
      assert.equal(await store.deleteUser(user.id), false)
    })

    it('rejects a duplicate email with DuplicateError', async () => {
      const user = await newUser()
      await assert.rejects(
        store.createUser({ email: user.email, name: null, role: 'user', passwordHash: 'x' }),
        (err: unknown) => err instanceof DuplicateError && err.field === 'email'
      )
    })

    it('answers null for unknown users', async () => {
      assert.equal(await store.getUser(newId()), null)
      assert.equal(await store.findUserByEmail('nobody@example.com'), null)
      assert.equal(await store.updateUser(newId(), { name: 'x' }), null)
    })

    it('deleting a user removes what the user owns and nothing of others', async () => {
      const a = await newUser()
      const b = await newUser()
      const keyA = await store.createKey(a.id, keyFixture())
      const keyB = await store.createKey(b.id, keyFixture())
      await store.createSession({ userId: a.id, expiresAt: Date.now() + 60_000, userAgent: null, ip: null }, `rt-${newId()}`)
      const sessionB = await store.createSession({ userId: b.id, expiresAt: Date.now() + 60_000, userAgent: null, ip: null }, `rt-${newId()}`)
      await store.deleteUser(a.id)
      assert.equal(await store.getKey(a.id, keyA.id), null)
      assert.equal(await store.findCredentialByHash(keyA.hash as string), null)
      assert.deepEqual(await store.listSessions(a.id), [])
      assert.deepEqual(await store.getKey(b.id, keyB.id), keyB)
      assert.deepEqual(await store.getSession(b.id, sessionB.id), sessionB)
    })

    it('marks a user deleted in one step (hidden, email free, verify keys refused), then purges it batch by batch, resumably', async () => {
      const a = await newUser()
      const keys = [await store.createKey(a.id, keyFixture({ scopes: ['keyward:verify'] })), await store.createKey(a.id, keyFixture()), await store.createKey(a.id, keyFixture())]
      await store.appendAudit(a.id, { action: 'auth.account_deleted', ip: '198.51.100.9' })
      await store.createSession({ userId: a.id, expiresAt: Date.now() + 60_000, userAgent: null, ip: null }, `rt-${newId()}`)
      assert.equal(await store.purgeDeletedUser(a.id, 10), 0, 'a live account is never purged')
      assert.equal(await store.markUserDeleted(a.id, Date.now()), true)
      assert.equal(await store.markUserDeleted(a.id, Date.now()), false)
      assert.equal(await store.getUser(a.id), null)
      assert.equal(await store.findUserByEmail(a.email), null)
      assert.equal(await store.findCredentialByHash(keys[0]!.hash as string), null)
      assert.deepEqual(await store.listSessions(a.id), [])
      const again = await store.createUser({ email: a.email, name: null, role: 'user', passwordHash: 'x' })
      assert.ok((await store.listDeletedUsers(1000)).includes(a.id))

      assert.equal(await store.purgeDeletedUser(a.id, 2), 2, 'a batch stops at its bound')
      const reopened = await c.harness.reopen()
      try {
        await reopened.init()
        assert.equal(await purgeAccount(reopened, a.id, 2), 1, 'and the rest is purged from another store over the same data')
        assert.equal(await reopened.purgeDeletedUser(a.id, 2), 0)
      } finally {
        await reopened.close()
      }
      assert.ok(!(await store.listDeletedUsers(1000)).includes(a.id))
      assert.equal(await store.getKey(a.id, keys[1]!.id), null)
      assert.equal((await store.getUser(again.id))?.email, a.email)
      await c.verifyChain(anonymousOwner(a.id), 1)
    })
  })
}
