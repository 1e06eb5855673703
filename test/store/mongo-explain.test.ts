import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { MongoClient, type Collection, type Document, type Filter, type Sort } from 'mongodb'
import { AuditChain } from '../../plugins/app/store/audit-chain.ts'
import { createMongoStore } from '../../plugins/app/store/mongo/index.ts'
import { listFilter } from '../../plugins/app/store/mongo/key-queries.ts'
import type { Store } from '../../plugins/app/store/types/index.ts'
import { keyFixture } from './contract/fixtures.ts'

const uri = process.env.MONGODB_URI
const OWNER = 'a0a0a0a0a0a0a0a0a0a0a0a0'
const KEYS = 200
const now = new Date()

/** Every stage name of a winning plan, classic or slot-based (`queryPlan`), nested stages included. */
function stages (plan: unknown, into: string[] = []): string[] {
  if (Array.isArray(plan)) {
    for (const item of plan) stages(item, into)
  } else if (plan !== null && typeof plan === 'object') {
    for (const [field, value] of Object.entries(plan)) {
      if (field === 'stage' && typeof value === 'string') into.push(value)
      else if (field !== 'rejectedPlans') stages(value, into)
    }
  }
  return into
}

interface Shape {
  name: string
  collection: (db: Collections) => Collection<Document>
  filter: Filter<Document>
  sort?: Sort
  hint?: Document
}
type Collections = Record<string, Collection<Document>>

const byOwnerAndKey = { ownerId: OWNER, keyId: 'k1' }
const owned = (ownerId = OWNER) => ({ ownerId })
const keyList = (query: Partial<Parameters<typeof listFilter>[1]> & { sort: 'createdAt' | 'name' | 'lastUsedAt' | 'expiresAt' }): Shape => ({
  name: `listKeys ${JSON.stringify(query)}`,
  collection: (c) => c.keys!,
  filter: listFilter(OWNER, { limit: 50, descending: false, ...query }) as Filter<Document>,
  sort: { [query.sort]: 1, _id: 1 }
})

/**
 * The query shape of each store method over a collection that grows with users, as the adapter
 * issues it (an update or a delete is planned like a find with its filter).
 */
const SHAPES: Shape[] = [
  { name: 'findUserByEmail', collection: (c) => c.users!, filter: { email: 'x@example.com', deletedAt: null } },
  { name: 'listDeletedUsers', collection: (c) => c.users!, filter: { deletedAt: { $type: 'date' } }, sort: { deletedAt: 1 } },
  { name: 'listSessions', collection: (c) => c.sessions!, filter: { userId: OWNER }, sort: { createdAt: -1, _id: -1 } },
  { name: 'purgeSessions', collection: (c) => c.sessions!, filter: { expiresAt: { $lt: now } } },
  { name: 'refresh tokens of sessions', collection: (c) => c.refresh_tokens!, filter: { sessionId: { $in: ['s1', 's2'] } } },
  { name: 'refresh tokens of a user', collection: (c) => c.refresh_tokens!, filter: { userId: OWNER } },
  keyList({ sort: 'createdAt' }),
  keyList({ sort: 'name' }),
  keyList({ sort: 'lastUsedAt' }),
  keyList({ sort: 'expiresAt' }),
  keyList({ sort: 'createdAt', status: 'active' }),
  keyList({ sort: 'createdAt', q: 'key' }),
  keyList({ sort: 'createdAt', after: { value: now.getTime(), id: '0' } }),
  { name: 'findKeyByHash', collection: (c) => c.keys!, filter: { hash: { $eq: 'h', $type: 'string' }, ownerId: OWNER } },
  { name: 'findCredentialByHash', collection: (c) => c.keys!, filter: { hash: { $eq: 'h', $type: 'string' }, kind: 'issued' } },
  { name: 'expiring keys', collection: (c) => c.keys!, filter: { status: 'active', expiresAt: { $lte: now } }, sort: { _id: 1 }, hint: { status: 1, _id: 1 } },
  { name: 'purgeRevokedKeys', collection: (c) => c.keys!, filter: { status: 'revoked', revokedAt: { $lt: now } } },
  { name: 'active keys (stats)', collection: (c) => c.keys!, filter: { status: 'active' } },
  { name: 'live sessions (stats)', collection: (c) => c.sessions!, filter: { revokedAt: null, expiresAt: { $gt: now } } },
  { name: 'pending deliveries (stats)', collection: (c) => c.deliveries!, filter: { status: 'pending' } },
  { name: 'keys by owner (keyStats, purge)', collection: (c) => c.keys!, filter: owned() },
  { name: 'listKeyVersions', collection: (c) => c.key_versions!, filter: byOwnerAndKey, sort: { version: -1 } },
  { name: 'findVersionByHash', collection: (c) => c.key_versions!, filter: { hash: { $eq: 'h', $type: 'string' }, ownerId: OWNER } },
  { name: 'key versions by owner (purge)', collection: (c) => c.key_versions!, filter: owned() },
  { name: 'last audit event', collection: (c) => c.audit_events!, filter: owned(), sort: { seq: -1 } },
  { name: 'listAudit', collection: (c) => c.audit_events!, filter: { ownerId: OWNER, seq: { $lt: 100 } }, sort: { seq: -1 } },
  { name: 'listAudit by action', collection: (c) => c.audit_events!, filter: { ownerId: OWNER, action: 'key.created' }, sort: { seq: -1 } },
  { name: 'listAudit by key', collection: (c) => c.audit_events!, filter: { ownerId: OWNER, keyId: 'k1' }, sort: { seq: -1 } },
  { name: 'auditChain', collection: (c) => c.audit_events!, filter: { ownerId: OWNER, seq: { $gt: 0 } }, sort: { seq: 1 } },
  { name: 'purgeAudit', collection: (c) => c.audit_events!, filter: { createdAt: { $lt: now } }, sort: { ownerId: 1, seq: 1 }, hint: { ownerId: 1, seq: 1, createdAt: 1 } },
  { name: 'monthlyUsage', collection: (c) => c.usage_monthly!, filter: { ownerId: OWNER, month: now }, sort: { keyId: 1 } },
  { name: 'monthly usage of a key (key deletion)', collection: (c) => c.usage_monthly!, filter: byOwnerAndKey },
  { name: 'usageSeries', collection: (c) => c.usage_hourly!, filter: { ...byOwnerAndKey, hour: { $gte: now, $lt: now } }, sort: { hour: 1 } },
  { name: 'purgeUsageHourly', collection: (c) => c.usage_hourly!, filter: { hour: { $lt: now } } },
  { name: 'usageDaily', collection: (c) => c.usage_daily!, filter: { ...byOwnerAndKey, day: { $gte: now, $lt: now } }, sort: { day: 1 } },
  { name: 'purgeIdempotency', collection: (c) => c.idempotency!, filter: { createdAt: { $lt: now } } },
  { name: 'idempotency by owner (purge)', collection: (c) => c.idempotency!, filter: owned() },
  { name: 'listNotifications', collection: (c) => c.notifications!, filter: { ownerId: OWNER, _id: { $lt: 'z' }, readAt: null } as unknown as Filter<Document>, sort: { _id: -1 } },
  { name: 'unread notifications (stats)', collection: (c) => c.notifications!, filter: { readAt: null } },
  { name: 'dueDeliveries', collection: (c) => c.deliveries!, filter: { status: 'pending', nextAttemptAt: { $lte: now } }, sort: { nextAttemptAt: 1 } },
  { name: 'deliveries by owner (purge)', collection: (c) => c.deliveries!, filter: owned() },
  { name: 'jobRuns', collection: (c) => c.job_runs!, filter: { job: 'data-cleanup' }, sort: { startedAt: -1, _id: -1 } }
]

async function seed (store: Store) {
  const hour = Math.floor(Date.now() / 3_600_000) * 3_600_000
  await store.createUser({ email: 'explain@example.com', name: null, role: 'user', passwordHash: 'x' })
  for (let i = 0; i < KEYS; i++) {
    const key = keyFixture({ tags: ['common'] })
    await store.createKey(OWNER, key, { hash: key.hash, start: key.start, ciphertext: null }, { action: 'key.created', keyId: key.id })
    await store.recordUsage([{ ownerId: OWNER, keyId: key.id, hour, units: 1, requests: 1, lastUsedAt: hour }])
  }
  await store.rollupDaily(hour, hour + 3_600_000)
}

describe('MongoDB: every query shape is served by an index', { skip: uri === undefined ? 'MONGODB_URI is not set: no MongoDB server to explain queries on' : false }, () => {
  let client: MongoClient
  let store: Store
  const collections: Collections = {}
  const dbName = `keyward_explain_${process.pid}_${Date.now()}`

  before(async () => {
    client = new MongoClient(uri as string, { serverSelectionTimeoutMS: 5000 })
    await client.connect()
    store = createMongoStore(client.db(dbName), { client, closeClient: false, staleReadPreference: 'primary', auditChain: new AuditChain('explain-audit-chain-secret') })
    await store.init()
    await seed(store)
    for (const info of await client.db(dbName).listCollections().toArray()) collections[info.name] = client.db(dbName).collection(info.name)
  })
  after(async () => {
    await client?.db(dbName).dropDatabase().catch(() => {})
    await store?.close()
    await client?.close()
  })

  for (const shape of SHAPES) {
    it(shape.name, async () => {
      const collection = shape.collection(collections)
      let cursor = collection.find(shape.filter)
      if (shape.sort !== undefined) cursor = cursor.sort(shape.sort)
      if (shape.hint !== undefined) cursor = cursor.hint(shape.hint)
      const plan = await cursor.limit(50).explain('queryPlanner')
      const seen = stages((plan.queryPlanner as Document).winningPlan)
      assert.ok(!seen.includes('COLLSCAN'), `${collection.collectionName}: a collection scan (${seen.join(' < ')})`)
      assert.ok(!seen.includes('SORT'), `${collection.collectionName}: an in-memory sort (${seen.join(' < ')})`)
    })
  }
})
