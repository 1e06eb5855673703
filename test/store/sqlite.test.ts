import assert from 'node:assert/strict'
import { join } from 'node:path'
import { it } from 'node:test'
import Database from 'libsql'
import { SqliteStore } from '../../plugins/app/store/sqlite.ts'
import { StoreBusyError } from '../../plugins/app/store/types.ts'
import { tempDir } from '../helpers/tmp.ts'
import { storeContract } from './contract.ts'

storeContract('sqlite', async () => {
  const tmp = await tempDir('store-sqlite')
  const store = new SqliteStore({ dataDir: tmp.dir })
  await store.init()
  return {
    store,
    reopen: async () => new SqliteStore({ dataDir: tmp.dir }),
    cleanup: async () => { await store.close(); await tmp.remove() }
  }
})

it('sqlite: migrations are recorded once and the file passes an integrity check', async () => {
  const tmp = await tempDir('store-sqlite-mig')
  try {
    const store = new SqliteStore({ dataDir: tmp.dir })
    await store.init()
    const version = store.schemaVersion()
    assert.ok(version >= 1)
    await store.init()
    assert.equal(store.schemaVersion(), version)
    assert.equal(store.integrityCheck(), 'ok')
    await store.close()
    await store.close()
  } finally {
    await tmp.remove()
  }
})

it('sqlite: a write lock held by another connection past the busy timeout is a StoreBusyError; writes try without waiting until the backoff ends and succeed once the lock is gone', async () => {
  const tmp = await tempDir('store-sqlite-busy')
  const store = new SqliteStore({ dataDir: tmp.dir, busyTimeoutMs: 50, busyBackoffMs: 60_000 })
  const other = new Database(join(tmp.dir, 'keyward.db'))
  try {
    await store.init()
    const user = (n: number) => ({ email: `busy${n}@example.com`, name: null, role: 'user' as const, passwordHash: 'x' })
    other.exec('BEGIN IMMEDIATE')
    await assert.rejects(store.createUser(user(1)), StoreBusyError)
    await assert.rejects(store.createUser(user(2)), StoreBusyError, 'still locked: refused again')
    other.exec('ROLLBACK')
    const created = await store.createUser(user(3))
    assert.equal(created.email, 'busy3@example.com', 'the lock is gone: the next write succeeds within the backoff')
    assert.equal(await store.findUserByEmail('busy1@example.com'), null, 'a refused write changed nothing')
    assert.equal(await store.findUserByEmail('busy2@example.com'), null)
  } finally {
    other.close()
    await store.close()
    await tmp.remove()
  }
})
