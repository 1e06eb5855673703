import assert from 'node:assert/strict'
import { join } from 'node:path'
import { it } from 'node:test'
import Database from 'libsql'
import { AuditService } from '../../plugins/app/audit/service.ts'
import { AuditChain } from '../../plugins/app/store/audit-chain.ts'
import { anonymousOwner, PURGE_BATCH, purgeAccount } from '../../plugins/app/store/shared.ts'
import { createSqliteStore } from '../../plugins/app/store/sqlite/index.ts'
import type { Store, UserRecord } from '../../plugins/app/store/types/index.ts'
import { tempDir } from '../helpers/tmp.ts'
import { keyFixture } from './contract/fixtures.ts'

const auditChain = new AuditChain('account-deletion-audit-chain-secret')
const HOUR = 3_600_000
const KEYS = 1500
const OWNED_TABLES = ['keys', 'key_versions', 'usage_hourly', 'usage_monthly', 'usage_daily', 'idempotency']

/** A large account: KEYS keys, each with its version and usage, plus audit events. */
async function seedLargeAccount (store: Store, user: UserRecord) {
  const hour = Math.floor(Date.now() / HOUR) * HOUR
  for (let i = 0; i < KEYS; i++) {
    const key = keyFixture()
    await store.createKey(user.id, key, { hash: key.hash, start: key.start, ciphertext: null }, i < 3 ? { action: 'key.created', keyId: key.id } : undefined)
    await store.recordUsage([{ ownerId: user.id, keyId: key.id, hour, units: 2, requests: 1, lastUsedAt: hour }])
  }
  await store.rollupDaily(hour, hour + HOUR)
  await store.recordUsageOnce(user.id, 'idem-1', { ownerId: user.id, keyId: 'k', hour, units: 1, requests: 1, lastUsedAt: hour })
}

function rowsOf (file: string, ownerId: string): number {
  const raw = new Database(file)
  try {
    return OWNED_TABLES.reduce((n, table) => n + (raw.prepare(`SELECT COUNT(*) AS n FROM ${table} WHERE owner_id = ?`).get(ownerId) as { n: number }).n, 0)
  } finally {
    raw.close()
  }
}

it('sqlite: a large account is marked deleted at once, and a purge cut short after one batch completes after the store is reopened', async () => {
  const tmp = await tempDir('store-account-deletion')
  const file = join(tmp.dir, 'keyward.db')
  let store = createSqliteStore({ dataDir: tmp.dir, auditChain })
  try {
    await store.init()
    const user = await store.createUser({ email: 'large@example.com', name: 'Large', role: 'user', passwordHash: 'x' })
    const other = await store.createUser({ email: 'other@example.com', name: null, role: 'user', passwordHash: 'x' })
    const otherKey = await store.createKey(other.id, keyFixture())
    await seedLargeAccount(store, user)
    const verifyKey = await store.createKey(user.id, keyFixture({ scopes: ['keyward:verify'] }))
    await store.createSession({ userId: user.id, expiresAt: Date.now() + 60_000, userAgent: null, ip: null }, 'rt-large')
    const before = rowsOf(file, user.id)
    assert.ok(before > 4 * KEYS, `seeded ${before} rows`)

    assert.equal(await store.markUserDeleted(user.id, Date.now()), true)
    assert.equal(await store.markUserDeleted(user.id, Date.now()), false, 'marked once')
    assert.equal(await store.getUser(user.id), null, 'gone for every reader at once')
    assert.equal(await store.findUserByEmail('large@example.com'), null)
    assert.equal(await store.findCredentialByHash(verifyKey.hash as string), null, 'its verify key no longer resolves')
    assert.deepEqual(await store.listSessions(user.id), [])
    assert.equal(await store.updateUser(user.id, { name: 'back' }), null)
    const again = await store.createUser({ email: 'large@example.com', name: null, role: 'user', passwordHash: 'y' })
    assert.notEqual(again.id, user.id, 'the email registers again while the old account waits for its purge')
    assert.deepEqual(await store.listDeletedUsers(10), [user.id])

    assert.equal(await store.purgeDeletedUser(user.id, PURGE_BATCH), PURGE_BATCH, 'one bounded batch')
    assert.equal(rowsOf(file, user.id), before - PURGE_BATCH)
    await store.close()

    store = createSqliteStore({ dataDir: tmp.dir, auditChain })
    await store.init()
    assert.deepEqual(await store.listDeletedUsers(10), [user.id], 'the unfinished purge is still listed after a restart')
    assert.equal(await store.purgeDeletedUser(again.id, PURGE_BATCH), 0, 'a live account is never purged')
    assert.equal(await purgeAccount(store, user.id, PURGE_BATCH), before - PURGE_BATCH)
    assert.equal(rowsOf(file, user.id), 0)
    assert.deepEqual(await store.listDeletedUsers(10), [])
    assert.deepEqual(await store.getKey(other.id, otherKey.id), otherKey, 'nothing of others')
    assert.ok(await store.getUser(again.id))

    const kept = await store.auditChain(anonymousOwner(user.id), 0, 100)
    assert.ok(kept.length === 3 && kept.every((e) => e.anonymised), 'the events stay, anonymised')
    assert.deepEqual(await new AuditService(store, auditChain).verify(anonymousOwner(user.id)),
      { valid: true, events: 3, brokenAt: null, lastHash: kept[2]!.hash })
  } finally {
    await store.close()
    await tmp.remove()
  }
})
