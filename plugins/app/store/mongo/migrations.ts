import type { Collection, Db, Document, IndexDescription } from 'mongodb'
import type { AuditChain } from '../audit-chain.ts'
import type { MongoConnection } from './connection.ts'

const SEAL_V1_CHAINS = 'audit-link-v2-seal-v1-chains'

/** Indexes and one-time data migrations, applied at start-up; safe to run any number of times, from several instances at once. */
export async function applyMigrations (m: MongoConnection, chain: AuditChain): Promise<void> {
  await ensureIndexes(m)
  await sealV1Chains(m, chain)
}

/** Server codes of an index whose definition changed between versions: same key other options, or same name other key. */
const INDEX_OPTIONS_CONFLICT = 85
const INDEX_KEY_SPECS_CONFLICT = 86
const INDEX_NOT_FOUND = 27

async function ensureIndexes (m: MongoConnection): Promise<void> {
  await Promise.all([
    // deletedAt: the purge job's scan for accounts marked deleted and not yet purged (few at a time, so partial).
    ensure(m.users, [{ key: { email: 1 }, unique: true }, { key: { deletedAt: 1 }, partialFilterExpression: { deletedAt: { $type: 'date' } } }]),
    ensure(m.sessions, [{ key: { userId: 1, createdAt: -1 } }, { key: { expiresAt: 1 } }]),
    ensure(m.refreshTokens, [{ key: { sessionId: 1 } }, { key: { userId: 1 } }]),
    ensure(m.keys, [
      { key: { ownerId: 1, createdAt: 1, _id: 1 } },
      { key: { ownerId: 1, name: 1, _id: 1 } },
      { key: { ownerId: 1, lastUsedAt: 1, _id: 1 } },
      { key: { ownerId: 1, expiresAt: 1, _id: 1 } },
      { key: { ownerId: 1, status: 1 } },
      { key: { ownerId: 1, tags: 1 } },
      // The maintenance jobs' system-wide scans: by id within a status (hinted), or by a time within a status.
      { key: { status: 1, _id: 1 } },
      { key: { status: 1, expiresAt: 1 } },
      { key: { status: 1, rotationDueAt: 1 } },
      { key: { status: 1, revokedAt: 1 } },
      // Held keys have no hash; a partial index lets any number of them coexist under the unique rule.
      { key: { hash: 1 }, unique: true, partialFilterExpression: { hash: { $type: 'string' } } }
    ]),
    ensure(m.keyVersions, [
      { key: { hash: 1 }, unique: true, partialFilterExpression: { hash: { $type: 'string' } } },
      { key: { ownerId: 1, keyId: 1, version: -1 } }
    ]),
    ensure(m.audit, [
      // Two appends that read the same last event collide here, so the chain never forks.
      { key: { ownerId: 1, seq: 1 }, unique: true },
      { key: { ownerId: 1, action: 1, seq: -1 } },
      { key: { ownerId: 1, keyId: 1, seq: -1 } },
      // purgeAudit: sorted by (ownerId, seq), its createdAt filter checked in the index without fetching (sort before range).
      { key: { ownerId: 1, seq: 1, createdAt: 1 } },
      { key: { createdAt: 1 } }
    ]),
    ensure(m.usageHourly, [{ key: { ownerId: 1, hour: 1 } }, { key: { keyId: 1, hour: 1 } }, { key: { hour: 1 } }]),
    // monthlyUsage sorts by keyId; deleting a key's usage looks it up by keyId.
    ensure(m.usageMonthly, [{ key: { ownerId: 1, month: 1, keyId: 1 } }, { key: { keyId: 1, month: 1 } }]),
    // The cleanup job drops old records; an account purge drops an owner's.
    ensure(m.idempotency, [{ key: { createdAt: 1 } }, { key: { ownerId: 1 } }]),
    ensure(m.dailyUsage, [{ key: { ownerId: 1, day: 1 } }, { key: { keyId: 1, day: 1 } }]),
    ensure(m.notifications, [
      // One notification per dedupe key and owner: a second insert fails, so a job run twice notifies once.
      { key: { ownerId: 1, dedupeKey: 1 }, unique: true },
      { key: { ownerId: 1, _id: -1 } },
      { key: { readAt: 1 } }
    ]),
    ensure(m.deliveries, [
      { key: { eventId: 1 }, unique: true },
      { key: { status: 1, nextAttemptAt: 1 } },
      { key: { ownerId: 1 } }
    ]),
    ensure(m.jobRuns, [{ key: { job: 1, startedAt: -1 } }]),
    // vaults, audit_anchors and audit_seals need no index beyond _id; created up front so no transaction has to create them.
    createCollection(m.db, 'vaults'),
    createCollection(m.db, 'audit_anchors'),
    createCollection(m.db, 'audit_seals')
  ])
}

/** The name MongoDB gives an index it was not given one for: `field_direction` pairs joined by `_`. */
function defaultName (key: Document): string {
  return Object.entries(key).map(([field, direction]) => `${field}_${String(direction)}`).join('_')
}

/**
 * Creates the indexes, one at a time. An index whose definition changed between versions (now
 * unique, partial, or keyed differently under the same name) is dropped and built again rather
 * than stopping start-up with IndexOptionsConflict; another instance doing the same at the same
 * moment is tolerated.
 */
async function ensure<T extends Document> (collection: Collection<T>, indexes: IndexDescription[]): Promise<void> {
  for (const index of indexes) {
    for (let attempt = 1; ; attempt++) {
      try {
        await collection.createIndexes([index])
        break
      } catch (err) {
        const code = (err as { code?: unknown }).code
        if ((code !== INDEX_OPTIONS_CONFLICT && code !== INDEX_KEY_SPECS_CONFLICT) || attempt > 2) throw err
        await dropConflicting(collection, index)
      }
    }
  }
}

async function dropConflicting<T extends Document> (collection: Collection<T>, index: IndexDescription): Promise<void> {
  const name = index.name ?? defaultName(index.key as Document)
  const wanted = JSON.stringify(index.key)
  for (const existing of await collection.listIndexes().toArray()) {
    if (existing.name === '_id_' || (existing.name !== name && JSON.stringify(existing.key) !== wanted)) continue
    await collection.dropIndex(existing.name as string).catch((err: unknown) => {
      if ((err as { code?: unknown }).code !== INDEX_NOT_FOUND) throw err
    })
  }
}

async function createCollection (db: Db, name: string): Promise<void> {
  await db.createCollection(name, { writeConcern: { w: 'majority' } }).catch((err: unknown) => {
    if ((err as { code?: unknown }).code !== 48) throw err // NamespaceExists
  })
}

/**
 * Once: seals each owner's last audit event. Every event stored before link versions is v1, and
 * no v1 event is accepted past its owner's seal (v1 links can be recomputed without the server's
 * key). Instances starting together compute the same seals; the first one written stays.
 */
async function sealV1Chains (m: MongoConnection, chain: AuditChain): Promise<void> {
  if (await m.migrations.findOne({ _id: SEAL_V1_CHAINS }) !== null) return
  const lasts = m.audit.aggregate<{ _id: string, seq: number, hash: string }>([
    { $match: { linkVersion: { $exists: false } } },
    { $sort: { ownerId: 1, seq: -1 } },
    { $group: { _id: '$ownerId', seq: { $first: '$seq' }, hash: { $first: '$hash' } } }
  ], { allowDiskUse: true })
  for await (const last of lasts) {
    await m.auditSeals.updateOne({ _id: last._id }, { $setOnInsert: chain.seal(last._id, last.seq, last.hash) }, { upsert: true })
  }
  await m.migrations.updateOne({ _id: SEAL_V1_CHAINS }, { $setOnInsert: { appliedAt: new Date() } }, { upsert: true })
}
