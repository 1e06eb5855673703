import assert from 'node:assert/strict'
import { it } from 'node:test'
import { SqliteStore } from '../../plugins/app/store/sqlite.ts'
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
