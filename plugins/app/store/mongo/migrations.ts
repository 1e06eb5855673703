import type { Db } from 'mongodb'
import type { AuditChain } from '../audit-chain.ts'
import type { MongoConnection } from './connection.ts'

const SEAL_V1_CHAINS = 'audit-link-v2-seal-v1-chains'

/** Indexes and one-time data migrations, applied at start-up; safe to run any number of times, from several instances at once. */
export async function applyMigrations (m: MongoConnection, chain: AuditChain): Promise<void> {
  await ensureIndexes(m)
  await sealV1Chains(m, chain)
}

async function ensureIndexes (m: MongoConnection): Promise<void> {
  await Promise.all([
    m.users.createIndexes([{ key: { email: 1 }, unique: true }]),
    m.sessions.createIndexes([{ key: { userId: 1, createdAt: -1 } }, { key: { expiresAt: 1 } }]),
    m.refreshTokens.createIndexes([{ key: { sessionId: 1 } }, { key: { userId: 1 } }]),
    m.keys.createIndexes([
      { key: { ownerId: 1, createdAt: 1, _id: 1 } },
      { key: { ownerId: 1, name: 1, _id: 1 } },
      { key: { ownerId: 1, lastUsedAt: 1, _id: 1 } },
      { key: { ownerId: 1, expiresAt: 1, _id: 1 } },
      { key: { ownerId: 1, status: 1 } },
      { key: { ownerId: 1, tags: 1 } },
      // The maintenance jobs' system-wide scans.
      { key: { status: 1, expiresAt: 1 } },
      { key: { status: 1, rotationDueAt: 1 } },
      { key: { status: 1, revokedAt: 1 } },
      // Held keys have no hash; a partial index lets any number of them coexist under the unique rule.
      { key: { hash: 1 }, unique: true, partialFilterExpression: { hash: { $type: 'string' } } }
    ]),
    m.keyVersions.createIndexes([
      { key: { hash: 1 }, unique: true, partialFilterExpression: { hash: { $type: 'string' } } },
      { key: { ownerId: 1, keyId: 1, version: -1 } }
    ]),
    m.audit.createIndexes([
      // Two appends that read the same last event collide here, so the chain never forks.
      { key: { ownerId: 1, seq: 1 }, unique: true },
      { key: { ownerId: 1, action: 1, seq: -1 } },
      { key: { ownerId: 1, keyId: 1, seq: -1 } },
      // For pruning old events.
      { key: { createdAt: 1 } }
    ]),
    m.usageHourly.createIndexes([{ key: { ownerId: 1, hour: 1 } }, { key: { keyId: 1, hour: 1 } }, { key: { hour: 1 } }]),
    m.usageMonthly.createIndexes([{ key: { ownerId: 1, month: 1 } }]),
    // For the cleanup job that drops old idempotency records.
    m.idempotency.createIndexes([{ key: { createdAt: 1 } }]),
    m.dailyUsage.createIndexes([{ key: { ownerId: 1, day: 1 } }]),
    m.notifications.createIndexes([
      // One notification per dedupe key and owner: a second insert fails, so a job run twice notifies once.
      { key: { ownerId: 1, dedupeKey: 1 }, unique: true },
      { key: { ownerId: 1, _id: -1 } }
    ]),
    m.deliveries.createIndexes([
      { key: { eventId: 1 }, unique: true },
      { key: { status: 1, nextAttemptAt: 1 } },
      { key: { ownerId: 1 } }
    ]),
    m.jobRuns.createIndexes([{ key: { job: 1, startedAt: -1 } }]),
    // vaults, audit_anchors and audit_seals need no index beyond _id; created up front so no transaction has to create them.
    createCollection(m.db, 'vaults'),
    createCollection(m.db, 'audit_anchors'),
    createCollection(m.db, 'audit_seals')
  ])
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
