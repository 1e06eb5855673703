import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { it } from 'node:test'
import Database from 'libsql'
import { AuditService } from '../../plugins/app/audit/service.ts'
import { AuditChain } from '../../plugins/app/store/audit-chain.ts'
import { newId } from '../../plugins/app/store/ids.ts'
import { anonymousOwner, canonicalJson, GENESIS_HASH } from '../../plugins/app/store/shared.ts'
import { StoreBusyError } from '../../plugins/app/store/errors.ts'
import { createSqliteStore } from '../../plugins/app/store/sqlite/index.ts'
import { onScopeEnd } from '../helpers/scope.ts'
import { tempDir, testDir } from '../helpers/tmp.ts'
import { storeContract } from './contract/index.ts'

const auditChain = new AuditChain('store-contract-audit-chain-secret')

storeContract('sqlite', async () => {
  const tmp = await tempDir('store-sqlite')
  const store = createSqliteStore({ dataDir: tmp.dir, auditChain })
  await store.init()
  return {
    store,
    auditChain,
    reopen: async () => createSqliteStore({ dataDir: tmp.dir, auditChain }),
    cleanup: async () => { await store.close(); await tmp.remove() }
  }
})

it('sqlite: migrations are recorded once and the file passes an integrity check', async (ctx) => {
  const store = createSqliteStore({ dataDir: await testDir(ctx, 'store-sqlite-mig'), auditChain })
  await store.init()
  const version = store.schemaVersion()
  assert.ok(version >= 1)
  await store.init()
  assert.equal(store.schemaVersion(), version)
  assert.equal(store.integrityCheck(), 'ok')
  await store.close()
  await store.close()
})

it('sqlite: a write lock held by another connection past the busy timeout is a StoreBusyError; writes try without waiting until the backoff ends and succeed once the lock is gone', async (ctx) => {
  const dataDir = await testDir(ctx, 'store-sqlite-busy')
  const store = createSqliteStore({ dataDir, busyTimeoutMs: 50, busyBackoffMs: 60_000, auditChain })
  onScopeEnd(ctx, () => store.close())
  const other = new Database(join(dataDir, 'keyward.db'))
  onScopeEnd(ctx, () => other.close())
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
})

const sha256 = (value: unknown) => createHash('sha256').update(canonicalJson(value)).digest('hex')

interface V1Event { id: string, seq: number, action: string, keyId: string | null, sessionId: string | null, ip: string | null, detail: Record<string, unknown>, createdAt: number, prevHash: string, subjectDigest: string, hash: string }

/** An event linked by the v1 rule (SHA-256, no key): what the previous release wrote, and what anyone can compute. */
function v1Event (ownerId: string, prev: { seq: number, hash: string } | null, input: { action: string, keyId?: string, sessionId?: string, ip?: string, detail?: Record<string, unknown> }): V1Event {
  const e = {
    id: newId(),
    seq: (prev?.seq ?? 0) + 1,
    action: input.action,
    keyId: input.keyId ?? null,
    sessionId: input.sessionId ?? null,
    ip: input.ip ?? null,
    detail: input.detail ?? {},
    createdAt: Date.now(),
    prevHash: prev?.hash ?? GENESIS_HASH,
    subjectDigest: sha256([ownerId, input.sessionId ?? null, input.ip ?? null, input.detail ?? {}])
  }
  return { ...e, hash: sha256([e.seq, e.action, e.keyId, e.createdAt, e.prevHash, e.subjectDigest]) }
}

/** The previous release's INSERT: no link_version column. */
function insertV1 (db: InstanceType<typeof Database>, ownerId: string, e: V1Event) {
  db.prepare(`INSERT INTO audit_events (id, owner_id, seq, action, key_id, session_id, ip, detail, created_at, prev_hash,
      subject_digest, anonymised, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)`)
    .run(e.id, ownerId, e.seq, e.action, e.keyId, e.sessionId, e.ip, JSON.stringify(e.detail), e.createdAt, e.prevHash, e.subjectDigest, e.hash)
}

it('sqlite: chains written before link versions (v1, SHA-256) still verify after the upgrade, live and deleted; a v1 event past the sealed end is refused', async (ctx) => {
  const dataDir = await testDir(ctx, 'store-sqlite-v1')
  const file = join(dataDir, 'keyward.db')
  // A file as the previous release left it: no link_version column, no seals, v1 events (the two
  // migrations before users.deleted_at added link versions and sealed v1 chains; later migrations are undone here too).
  const old = createSqliteStore({ dataDir, auditChain })
  await old.init()
  const user = await old.createUser({ email: 'v1@example.com', name: null, role: 'user', passwordHash: 'x' })
  const gone = await old.createUser({ email: 'v1-gone@example.com', name: null, role: 'user', passwordHash: 'x' })
  const current = old.schemaVersion()
  await old.close()
  const raw = new Database(file)
  raw.exec(`DROP INDEX users_deleted; ALTER TABLE users DROP COLUMN deleted_at;
    DROP TABLE audit_seals; ALTER TABLE audit_events DROP COLUMN link_version; DELETE FROM schema_migrations WHERE version > ${current - 3}`)
  const e1 = v1Event(user.id, null, { action: 'auth.register', ip: '198.51.100.7', sessionId: 's1', detail: { email: user.email } })
  const e2 = v1Event(user.id, e1, { action: 'key.created', keyId: 'k1' })
  const e3 = v1Event(user.id, e2, { action: 'key.revealed', keyId: 'k1', detail: { version: 1 } })
  for (const e of [e1, e2, e3]) insertV1(raw, user.id, e)
  const g1 = v1Event(gone.id, null, { action: 'auth.login', ip: '198.51.100.8' })
  const g2 = v1Event(gone.id, g1, { action: 'key.created', keyId: 'k2' })
  for (const e of [g1, g2]) insertV1(raw, gone.id, e)
  // The previous release's account deletion.
  raw.prepare("UPDATE audit_events SET owner_id = ?, session_id = NULL, ip = NULL, detail = '{}', anonymised = 1 WHERE owner_id = ?").run(anonymousOwner(gone.id), gone.id)
  raw.prepare('DELETE FROM users WHERE id = ?').run(gone.id)

  const store = createSqliteStore({ dataDir, auditChain })
  await store.init()
  assert.equal(store.schemaVersion(), current)
  const audit = new AuditService(store, auditChain)
  assert.deepEqual(await audit.verify(user.id), { valid: true, events: 3, brokenAt: null, lastHash: e3.hash }, 'the same last hash as before the upgrade')
  assert.deepEqual(await audit.verify(anonymousOwner(gone.id)), { valid: true, events: 2, brokenAt: null, lastHash: g2.hash })
  const next = await store.appendAudit(user.id, { action: 'key.updated', keyId: 'k1', ip: '198.51.100.7' })
  assert.deepEqual([next.linkVersion, next.prevHash], [2, e3.hash])
  assert.deepEqual(await audit.verify(user.id), { valid: true, events: 4, brokenAt: null, lastHash: next.hash })

  // A database writer appends a v1 event after the v2 one: refused.
  const appended = v1Event(user.id, next, { action: 'key.deleted', keyId: 'k1' })
  insertV1(raw, user.id, appended)
  assert.deepEqual((await audit.verify(user.id)).brokenAt, { seq: 5, reason: 'edited' }, 'v1 after v2')
  raw.prepare('DELETE FROM audit_events WHERE id = ?').run(appended.id)

  // ... or rewrites the v2 event as a v1 one, digest and link recomputed: refused (past the seal).
  const forged = v1Event(user.id, e3, { action: 'key.updated', keyId: 'k1', ip: '203.0.113.66' })
  raw.prepare('UPDATE audit_events SET ip = ?, subject_digest = ?, created_at = ?, hash = ?, link_version = 1 WHERE id = ?')
    .run(forged.ip, forged.subjectDigest, forged.createdAt, forged.hash, next.id)
  assert.deepEqual((await audit.verify(user.id)).brokenAt, { seq: 4, reason: 'edited' }, 'v2 rewritten as v1')
  raw.prepare('UPDATE audit_events SET ip = ?, subject_digest = ?, created_at = ?, hash = ?, link_version = 2 WHERE id = ?')
    .run(next.ip, next.subjectDigest, next.createdAt, next.hash, next.id)
  assert.equal((await audit.verify(user.id)).valid, true, 'restored')

  // ... or edits the seal to reach further: its MAC no longer holds, so no v1 event is trusted.
  raw.prepare('UPDATE audit_seals SET seq = 9 WHERE owner_id = ?').run(user.id)
  assert.deepEqual((await audit.verify(user.id)).brokenAt, { seq: 1, reason: 'edited' }, 'edited seal')
  raw.prepare('UPDATE audit_seals SET seq = 3 WHERE owner_id = ?').run(user.id)

  // Deleting the account (v1 and v2 events) still leaves a verifying, anonymised chain.
  assert.equal(await store.deleteUser(user.id), true)
  assert.deepEqual(await audit.verify(anonymousOwner(user.id)), { valid: true, events: 4, brokenAt: null, lastHash: next.hash })

  // A deleted chain cut back before its sealed v1 end is found, and so is a personal field written back.
  raw.prepare('UPDATE audit_events SET ip = ? WHERE id = ?').run('198.51.100.8', g1.id)
  assert.deepEqual((await audit.verify(anonymousOwner(gone.id))).brokenAt, { seq: 1, reason: 'edited' }, 'anonymised event with an ip')
  raw.prepare('UPDATE audit_events SET ip = NULL WHERE id = ?').run(g1.id)
  raw.prepare('DELETE FROM audit_events WHERE id = ?').run(g2.id)
  assert.deepEqual((await audit.verify(anonymousOwner(gone.id))).brokenAt, { seq: 2, reason: 'missing' }, 'cut back before the seal')
  raw.close()
  await store.close()
})
