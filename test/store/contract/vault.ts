import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import type { Store } from '../../../plugins/app/store/types/index.ts'
import type { ContractContext } from './fixtures.ts'

export function vaultContract (c: ContractContext): void {
  describe('vaults', () => {
    let store: Store
    before(() => { store = c.store })
    const { newUser } = c

    it('creates once and replaces only from the current revision', async () => {
      const user = await newUser()
      assert.equal(await store.getVault(user.id), null)
      assert.equal(await store.saveVault(user.id, { kdf: 'k1', wrappedKey: 'w1' }, null, { action: 'vault.created' }), true)
      assert.equal(await store.saveVault(user.id, { kdf: 'k2', wrappedKey: 'w2' }, null), false, 'a second create loses')
      const v1 = await store.getVault(user.id)
      assert.equal(v1?.revision, 1)
      assert.equal(v1?.kdf, 'k1')
      assert.equal(await store.saveVault(user.id, { kdf: 'k3', wrappedKey: 'w3' }, 7), false, 'stale revision')
      assert.equal(await store.saveVault(user.id, { kdf: 'k3', wrappedKey: 'w3' }, 1, { action: 'vault.passphrase_changed' }), true)
      const v2 = await store.getVault(user.id)
      assert.equal(v2?.revision, 2)
      assert.equal(v2?.wrappedKey, 'w3')
      assert.deepEqual((await store.auditChain(user.id, 0, 10)).map((e) => e.action), ['vault.created', 'vault.passphrase_changed'])
      await store.deleteUser(user.id)
      assert.equal(await store.getVault(user.id), null)
    })
  })
}
