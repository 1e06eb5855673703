import type {
  ClientSession, Collection, Db, Filter, MongoClient, ReadPreferenceLike, TransactionOptions, WithId
} from 'mongodb'
import { newId } from './ids.ts'
import type { AuditChain } from './audit-chain.ts'
import { anonymousOwner, GENESIS_HASH, monthStart, searchText, sortValue } from './shared.ts'
import {
  DuplicateError, KeyRevokedError,
  type AuditEvent, type AuditInput, type AuditQuery, type AuditSeal, type DeliveryRecord, type DeliveryStatus, type Environment,
  type JobRunRecord, type KeyKind, type KeyListQuery, type KeyPatch, type KeyRateLimit, type KeyRecord, type KeySortField,
  type KeyStats, type KeyStatus, type KeyVersionRecord, type NewDelivery, type NewKey, type NewKeyVersion,
  type NewNotification, type NewSession, type NewUser, type NotificationRecord, type NotificationType, type Page,
  type RefreshOutcome, type Role, type RotationPlan, type SessionRecord, type StatsSnapshot, type Store, type StoreHealth,
  type SystemCounts, type UsageDelta, type UsagePoint, type UsageTotal, type UserPatch, type UserRecord, type VaultRecord,
  type WebhookRecord
} from './types.ts'

interface UserDoc {
  _id: string
  email: string
  name: string | null
  role: Role
  passwordHash: string
  createdAt: Date
  updatedAt: Date
}

interface SessionDoc {
  _id: string
  userId: string
  createdAt: Date
  expiresAt: Date
  lastUsedAt: Date
  revokedAt: Date | null
  userAgent: string | null
  ip: string | null
}

interface RefreshTokenDoc {
  _id: string
  sessionId: string
  userId: string
  createdAt: Date
  usedAt: Date | null
}

interface KeyDoc {
  _id: string
  ownerId: string
  kind: KeyKind
  name: string
  service: string | null
  description: string | null
  environment: Environment
  tags: string[]
  scopes: string[]
  metadata: Record<string, unknown>
  prefix: string
  start: string
  hash: string | null
  version: number
  status: KeyStatus
  /** Missing on keys written before versions existed; read as false. */
  recoverable?: boolean
  expiresAt: Date | null
  rotationIntervalDays: number | null
  rotationDueAt: Date | null
  monthlyLimit: number | null
  rateLimit: KeyRateLimit | null
  createdAt: Date
  updatedAt: Date
  lastUsedAt: Date | null
  revokedAt?: Date | null
  /** searchText() of the key, kept in step on every write so `q` is one regex over one field. */
  search: string
}

interface KeyVersionDoc {
  /** `${keyId}:${version}` */
  _id: string
  keyId: string
  ownerId: string
  version: number
  hash: string | null
  start: string
  ciphertext: string | null
  createdAt: Date
  retiredAt: Date | null
  graceEndsAt: Date | null
}

interface VaultDoc {
  /** The user's id. */
  _id: string
  kdf: string
  wrappedKey: string
  revision: number
  createdAt: Date
  updatedAt: Date
}

interface AuditDoc {
  _id: string
  ownerId: string
  seq: number
  action: string
  keyId: string | null
  sessionId: string | null
  ip: string | null
  detail: Record<string, unknown>
  createdAt: Date
  prevHash: string
  subjectDigest: string
  anonymised: boolean
  /** Absent on events stored before link versions (and by older instances): those are v1. */
  linkVersion?: number
  hash: string
}

interface UsageHourlyDoc {
  /** `${keyId}:${hour}` */
  _id: string
  keyId: string
  ownerId: string
  /** Start of the UTC hour. */
  hour: Date
  units: number
  requests: number
}

interface UsageMonthlyDoc {
  /** `${keyId}:${month}` */
  _id: string
  keyId: string
  ownerId: string
  /** Start of the UTC month. */
  month: Date
  units: number
  requests: number
}

interface IdempotencyDoc {
  /** `${ownerId}:${idempotencyKey}` */
  _id: string
  ownerId: string
  keyId: string
  createdAt: Date
}

interface UsageDailyDoc {
  /** `${keyId}:${day}` */
  _id: string
  keyId: string
  ownerId: string
  /** Start of the UTC day. */
  day: Date
  units: number
  requests: number
}

interface NotificationDoc {
  _id: string
  ownerId: string
  type: NotificationType
  keyId: string | null
  title: string
  detail: Record<string, unknown>
  dedupeKey: string
  createdAt: Date
  readAt: Date | null
}

interface WebhookDoc {
  /** The owner's id: one webhook per owner. */
  _id: string
  url: string
  secret: string
  createdAt: Date
  updatedAt: Date
}

interface DeliveryDoc {
  _id: string
  ownerId: string
  eventId: string
  url: string
  payload: string
  status: DeliveryStatus
  attempts: number
  nextAttemptAt: Date
  lastError: string | null
  createdAt: Date
  deliveredAt: Date | null
}

interface JobRunDoc {
  _id: string
  job: string
  startedAt: Date
  durationMs: number
  ok: boolean
  result: Record<string, unknown>
  error: string | null
}

interface StatsSnapshotDoc {
  /** The snapshot's time: one snapshot per instant. */
  _id: Date
  data: Record<string, unknown>
}

interface LeaseDoc {
  /** The lease's name. */
  _id: string
  holder: string
  /** Epoch ms, a number: compared with the caller's `now`, never with the server's clock. */
  expiresAt: number
}

interface AuditAnchorDoc {
  /** The owner's id. */
  _id: string
  seq: number
  hash: string
}

interface AuditSealDoc extends AuditSeal {
  /** The owner's id. */
  _id: string
}

/** A one-time data migration, recorded once done. */
interface MigrationDoc {
  _id: string
  appliedAt: Date
}

const SEAL_V1_CHAINS = 'audit-link-v2-seal-v1-chains'

/** One rollupDaily group: a key's usage over one UTC day. */
interface DailyGroup {
  _id: { keyId: string, ownerId: string, day: Date }
  units: number
  requests: number
}

interface GroupCount {
  _id: string | null
  n: number
}

interface StatsFacets {
  byStatus: GroupCount[]
  byKind: GroupCount[]
  byService: GroupCount[]
  byEnvironment: GroupCount[]
  counts: Array<{ total: number, expiringSoon: number, rotationDue: number }>
}

export interface MongoStoreOptions {
  /** The client `db` belongs to; multi-document changes run in transactions on its sessions. */
  client: MongoClient
  /** Whether close() closes the client too; leave unset when the caller owns the client. */
  closeClient?: boolean
  /** Where listKeys reads; a lagging secondary may miss a key written a moment ago. */
  listReadPreference?: ReadPreferenceLike
  /** Links audit events under the server's key. */
  auditChain: AuditChain
}

const INVALID: RefreshOutcome = { status: 'invalid' }

const KEY_PATCH_FIELDS = [
  'name', 'service', 'description', 'environment', 'tags', 'scopes', 'metadata', 'expiresAt', 'rotationIntervalDays',
  'rotationDueAt', 'monthlyLimit', 'rateLimit', 'status', 'hash', 'start', 'prefix', 'version', 'lastUsedAt',
  'recoverable', 'revokedAt'
] as const satisfies ReadonlyArray<keyof KeyPatch>

const SEARCH_FIELDS = ['name', 'service', 'description', 'tags'] as const satisfies ReadonlyArray<keyof KeyPatch>
const TIME_FIELDS = new Set<string>(['expiresAt', 'rotationDueAt', 'lastUsedAt', 'createdAt', 'revokedAt'])
const NULLABLE_SORT_FIELDS = new Set<KeySortField>(['lastUsedAt', 'expiresAt'])
/**
 * Whole-transaction attempts when a concurrent transaction got there first: took the audit sequence
 * number, or created a usage counter or idempotency record this one was about to create.
 */
const CONFLICT_ATTEMPTS = 5
const DAY_MS = 86_400_000
const EXPIRING_SOON_MS = 7 * DAY_MS
/** Runs kept per job; recordJobRun drops older ones. */
const JOB_RUNS_KEPT = 200
// Records never carry the search text, so reads leave it on the server.
const KEY_READ = { projection: { search: 0 } }
/**
 * Snapshot reads and majority commits: a transaction sees one consistent state and its effects
 * survive a failover. Primary explicitly, whatever the connection string asks for reads.
 */
const TRANSACTION_OPTIONS: TransactionOptions = {
  readConcern: { level: 'snapshot' },
  writeConcern: { w: 'majority' },
  readPreference: 'primary'
}

/** A race lost to a concurrent transaction; the whole transaction is worth another go (transaction() gives it one). */
class RetryableConflict extends Error {}

/** Another append took this owner's next sequence number. */
class AuditConflict extends RetryableConflict {
  constructor (ownerId: string, cause: unknown) {
    super(`audit chain of ${ownerId} changed during the append; try again`, { cause })
    this.name = 'AuditConflict'
  }
}

/**
 * A concurrent transaction created the document (a usage counter or an idempotency record) this one
 * was about to create. A duplicate key aborts the transaction on the server, so the retry starts over
 * and then sees the document.
 */
class CreateConflict extends RetryableConflict {
  constructor (id: string, cause: unknown) {
    super(`${id} was created by a concurrent write; try again`, { cause })
    this.name = 'CreateConflict'
  }
}

function toDate (ms: number): Date {
  return new Date(ms)
}

function toDateOrNull (ms: number | null): Date | null {
  return ms === null ? null : new Date(ms)
}

function fromDateOrNull (date: Date | null | undefined): number | null {
  return date == null ? null : date.getTime()
}

/** Same bytes as the SQLite adapter's JSON column: undefined members dropped, only JSON values kept. */
function jsonValue<T> (value: T): T {
  return value === null ? value : JSON.parse(JSON.stringify(value)) as T
}

function toUser (doc: WithId<UserDoc>): UserRecord {
  return {
    id: doc._id,
    email: doc.email,
    name: doc.name ?? null,
    role: doc.role,
    passwordHash: doc.passwordHash,
    createdAt: doc.createdAt.getTime(),
    updatedAt: doc.updatedAt.getTime()
  }
}

function toSession (doc: WithId<SessionDoc>): SessionRecord {
  return {
    id: doc._id,
    userId: doc.userId,
    createdAt: doc.createdAt.getTime(),
    expiresAt: doc.expiresAt.getTime(),
    lastUsedAt: doc.lastUsedAt.getTime(),
    revokedAt: fromDateOrNull(doc.revokedAt),
    userAgent: doc.userAgent ?? null,
    ip: doc.ip ?? null
  }
}

function toKey (doc: WithId<KeyDoc>): KeyRecord {
  return {
    id: doc._id,
    ownerId: doc.ownerId,
    kind: doc.kind,
    name: doc.name,
    service: doc.service ?? null,
    description: doc.description ?? null,
    environment: doc.environment,
    tags: doc.tags ?? [],
    scopes: doc.scopes ?? [],
    metadata: doc.metadata ?? {},
    prefix: doc.prefix,
    start: doc.start,
    hash: doc.hash ?? null,
    version: doc.version,
    status: doc.status,
    recoverable: doc.recoverable === true,
    expiresAt: fromDateOrNull(doc.expiresAt),
    rotationIntervalDays: doc.rotationIntervalDays ?? null,
    rotationDueAt: fromDateOrNull(doc.rotationDueAt),
    monthlyLimit: doc.monthlyLimit ?? null,
    rateLimit: doc.rateLimit ?? null,
    createdAt: doc.createdAt.getTime(),
    updatedAt: doc.updatedAt.getTime(),
    lastUsedAt: fromDateOrNull(doc.lastUsedAt),
    revokedAt: fromDateOrNull(doc.revokedAt)
  }
}

function toVersion (doc: WithId<KeyVersionDoc>): KeyVersionRecord {
  return {
    keyId: doc.keyId,
    ownerId: doc.ownerId,
    version: doc.version,
    hash: doc.hash ?? null,
    start: doc.start,
    ciphertext: doc.ciphertext ?? null,
    createdAt: doc.createdAt.getTime(),
    retiredAt: fromDateOrNull(doc.retiredAt),
    graceEndsAt: fromDateOrNull(doc.graceEndsAt)
  }
}

function toVault (doc: WithId<VaultDoc>): VaultRecord {
  return {
    userId: doc._id,
    kdf: doc.kdf,
    wrappedKey: doc.wrappedKey,
    revision: doc.revision,
    createdAt: doc.createdAt.getTime(),
    updatedAt: doc.updatedAt.getTime()
  }
}

function toUsageTotal (doc: WithId<UsageMonthlyDoc>): UsageTotal {
  return { keyId: doc.keyId, month: doc.month.getTime(), units: doc.units, requests: doc.requests }
}

function toAudit (doc: WithId<AuditDoc>): AuditEvent {
  return {
    id: doc._id,
    ownerId: doc.ownerId,
    seq: doc.seq,
    action: doc.action,
    keyId: doc.keyId ?? null,
    sessionId: doc.sessionId ?? null,
    ip: doc.ip ?? null,
    detail: doc.detail ?? {},
    createdAt: doc.createdAt.getTime(),
    prevHash: doc.prevHash,
    subjectDigest: doc.subjectDigest,
    anonymised: doc.anonymised === true,
    linkVersion: doc.linkVersion ?? 1,
    hash: doc.hash
  }
}

function toNotification (doc: WithId<NotificationDoc>): NotificationRecord {
  return {
    id: doc._id,
    ownerId: doc.ownerId,
    type: doc.type,
    keyId: doc.keyId ?? null,
    title: doc.title,
    detail: doc.detail ?? {},
    dedupeKey: doc.dedupeKey,
    createdAt: doc.createdAt.getTime(),
    readAt: fromDateOrNull(doc.readAt)
  }
}

function toWebhook (doc: WithId<WebhookDoc>): WebhookRecord {
  return { ownerId: doc._id, url: doc.url, secret: doc.secret, createdAt: doc.createdAt.getTime(), updatedAt: doc.updatedAt.getTime() }
}

function toDelivery (doc: WithId<DeliveryDoc>): DeliveryRecord {
  return {
    id: doc._id,
    ownerId: doc.ownerId,
    eventId: doc.eventId,
    url: doc.url,
    payload: doc.payload,
    status: doc.status,
    attempts: doc.attempts,
    nextAttemptAt: doc.nextAttemptAt.getTime(),
    lastError: doc.lastError ?? null,
    createdAt: doc.createdAt.getTime(),
    deliveredAt: fromDateOrNull(doc.deliveredAt)
  }
}

function toJobRun (doc: WithId<JobRunDoc>): JobRunRecord {
  return {
    id: doc._id,
    job: doc.job,
    startedAt: doc.startedAt.getTime(),
    durationMs: doc.durationMs,
    ok: doc.ok === true,
    result: doc.result ?? {},
    error: doc.error ?? null
  }
}

function storedKeyValue (field: keyof KeyPatch, value: unknown): unknown {
  if (value === null) return null
  if (TIME_FIELDS.has(field)) return toDate(value as number)
  if (field === 'tags' || field === 'scopes' || field === 'metadata' || field === 'rateLimit') return jsonValue(value)
  return value
}

// Duck-typed rather than instanceof so an error from a second copy of the driver (another package's) still counts.
function isDuplicateKey (err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 11000
}

function escapeRegex (text: string): string {
  // A NUL byte is refused inside a $regex string, so it is spelled as an escape.
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\0/g, '\\x00')
}

function cursorValue (field: KeySortField, value: string | number | null): string | Date | null {
  if (value === null) return null
  if (field === 'name') return String(value)
  return typeof value === 'number' ? toDate(value) : null
}

// Comparisons never cross types ($gt: null matches no Date), so the cases around null are spelled out.
function keysetFilter (field: KeySortField, after: { value: string | number | null, id: string }, descending: boolean): Filter<KeyDoc> {
  const value = cursorValue(field, after.value)
  const idOp = descending ? '$lt' : '$gt'
  if (value === null) {
    return descending
      ? { [field]: null, _id: { $lt: after.id } }
      : { $or: [{ [field]: null, _id: { $gt: after.id } }, { [field]: { $ne: null } }] }
  }
  const clauses: Array<Filter<KeyDoc>> = [
    { [field]: { [idOp]: value } },
    { [field]: value, _id: { [idOp]: after.id } }
  ]
  if (descending && NULLABLE_SORT_FIELDS.has(field)) clauses.push({ [field]: null })
  return { $or: clauses }
}

/** Counts per value of a field; a missing or null value counts under 'none', as in SQLite. */
function countsBy (groups: GroupCount[]): Record<string, number> {
  return Object.fromEntries(groups.map((g) => [g._id == null ? 'none' : String(g._id), g.n]))
}

/** An aggregation expression: true when `field` holds a date (null and missing compare below every date). */
function isDate (field: string) {
  return { $eq: [{ $type: field }, 'date'] }
}

export class MongoStore implements Store {
  readonly kind = 'mongo' as const
  private readonly db: Db
  private readonly client: MongoClient
  private readonly closeClient: boolean
  private closed = false
  private readonly users: Collection<UserDoc>
  private readonly sessions: Collection<SessionDoc>
  private readonly refreshTokens: Collection<RefreshTokenDoc>
  private readonly keys: Collection<KeyDoc>
  private readonly keysForList: Collection<KeyDoc>
  private readonly keyVersions: Collection<KeyVersionDoc>
  private readonly vaults: Collection<VaultDoc>
  private readonly audit: Collection<AuditDoc>
  private readonly usageHourly: Collection<UsageHourlyDoc>
  private readonly usageMonthly: Collection<UsageMonthlyDoc>
  private readonly idempotency: Collection<IdempotencyDoc>
  private readonly dailyUsage: Collection<UsageDailyDoc>
  private readonly notifications: Collection<NotificationDoc>
  private readonly webhooks: Collection<WebhookDoc>
  private readonly deliveries: Collection<DeliveryDoc>
  private readonly jobRunDocs: Collection<JobRunDoc>
  private readonly snapshots: Collection<StatsSnapshotDoc>
  private readonly leases: Collection<LeaseDoc>
  private readonly auditAnchors: Collection<AuditAnchorDoc>
  private readonly auditSeals: Collection<AuditSealDoc>
  private readonly migrations: Collection<MigrationDoc>
  private readonly chain: AuditChain

  constructor (db: Db, options: MongoStoreOptions) {
    this.db = db
    this.client = options.client
    this.closeClient = options.closeClient ?? false
    // Primary reads even if the connection string asks otherwise: most reads follow a write of the same caller.
    // Inside a transaction the driver ignores the collection's write concern and uses the transaction's.
    const primary = { writeConcern: { w: 'majority' as const }, readPreference: 'primary' as const }
    this.users = db.collection<UserDoc>('users', primary)
    this.sessions = db.collection<SessionDoc>('sessions', primary)
    this.refreshTokens = db.collection<RefreshTokenDoc>('refresh_tokens', primary)
    this.keys = db.collection<KeyDoc>('keys', primary)
    this.keysForList = db.collection<KeyDoc>('keys', { readPreference: options.listReadPreference ?? 'primary' })
    this.keyVersions = db.collection<KeyVersionDoc>('key_versions', primary)
    this.vaults = db.collection<VaultDoc>('vaults', primary)
    this.audit = db.collection<AuditDoc>('audit_events', primary)
    this.usageHourly = db.collection<UsageHourlyDoc>('usage_hourly', primary)
    this.usageMonthly = db.collection<UsageMonthlyDoc>('usage_monthly', primary)
    this.idempotency = db.collection<IdempotencyDoc>('idempotency', primary)
    this.dailyUsage = db.collection<UsageDailyDoc>('usage_daily', primary)
    this.notifications = db.collection<NotificationDoc>('notifications', primary)
    this.webhooks = db.collection<WebhookDoc>('webhooks', primary)
    this.deliveries = db.collection<DeliveryDoc>('deliveries', primary)
    this.jobRunDocs = db.collection<JobRunDoc>('job_runs', primary)
    this.snapshots = db.collection<StatsSnapshotDoc>('stats_snapshots', primary)
    this.leases = db.collection<LeaseDoc>('leases', primary)
    this.auditAnchors = db.collection<AuditAnchorDoc>('audit_anchors', primary)
    this.auditSeals = db.collection<AuditSealDoc>('audit_seals', primary)
    this.migrations = db.collection<MigrationDoc>('migrations', primary)
    this.chain = options.auditChain
  }

  /**
   * Runs fn in a transaction (needs a replica set). The driver retries transient errors (write
   * conflicts) itself; a lost race for an audit sequence number or for creating a document is
   * retried here, a few times.
   * fn may run more than once, so it must only act through the session it is given.
   */
  private async transaction<T> (fn: (session: ClientSession) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.client.withSession((session) => session.withTransaction(fn, TRANSACTION_OPTIONS))
      } catch (err) {
        if (!(err instanceof RetryableConflict) || attempt >= CONFLICT_ATTEMPTS) throw err
      }
    }
  }

  async init (): Promise<void> {
    await Promise.all([
      this.users.createIndexes([{ key: { email: 1 }, unique: true }]),
      this.sessions.createIndexes([{ key: { userId: 1, createdAt: -1 } }, { key: { expiresAt: 1 } }]),
      this.refreshTokens.createIndexes([{ key: { sessionId: 1 } }, { key: { userId: 1 } }]),
      this.keys.createIndexes([
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
      this.keyVersions.createIndexes([
        { key: { hash: 1 }, unique: true, partialFilterExpression: { hash: { $type: 'string' } } },
        { key: { ownerId: 1, keyId: 1, version: -1 } }
      ]),
      this.audit.createIndexes([
        // Two appends that read the same last event collide here, so the chain never forks.
        { key: { ownerId: 1, seq: 1 }, unique: true },
        { key: { ownerId: 1, action: 1, seq: -1 } },
        { key: { ownerId: 1, keyId: 1, seq: -1 } },
        // For pruning old events.
        { key: { createdAt: 1 } }
      ]),
      this.usageHourly.createIndexes([{ key: { ownerId: 1, hour: 1 } }, { key: { keyId: 1, hour: 1 } }, { key: { hour: 1 } }]),
      this.usageMonthly.createIndexes([{ key: { ownerId: 1, month: 1 } }]),
      // For the cleanup job that drops old idempotency records.
      this.idempotency.createIndexes([{ key: { createdAt: 1 } }]),
      this.dailyUsage.createIndexes([{ key: { ownerId: 1, day: 1 } }]),
      this.notifications.createIndexes([
        // One notification per dedupe key and owner: a second insert fails, so a job run twice notifies once.
        { key: { ownerId: 1, dedupeKey: 1 }, unique: true },
        { key: { ownerId: 1, _id: -1 } }
      ]),
      this.deliveries.createIndexes([
        { key: { eventId: 1 }, unique: true },
        { key: { status: 1, nextAttemptAt: 1 } },
        { key: { ownerId: 1 } }
      ]),
      this.jobRunDocs.createIndexes([{ key: { job: 1, startedAt: -1 } }]),
      // vaults, audit_anchors and audit_seals need no index beyond _id; created up front so no transaction has to create them.
      this.createCollection('vaults'),
      this.createCollection('audit_anchors'),
      this.createCollection('audit_seals')
    ])
    await this.sealV1Chains()
  }

  /**
   * Once: seals each owner's last audit event. Every event stored before link versions is v1, and
   * no v1 event is accepted past its owner's seal (v1 links can be recomputed without the server's
   * key). Instances starting together compute the same seals; the first one written stays.
   */
  private async sealV1Chains (): Promise<void> {
    if (await this.migrations.findOne({ _id: SEAL_V1_CHAINS }) !== null) return
    const lasts = this.audit.aggregate<{ _id: string, seq: number, hash: string }>([
      { $match: { linkVersion: { $exists: false } } },
      { $sort: { ownerId: 1, seq: -1 } },
      { $group: { _id: '$ownerId', seq: { $first: '$seq' }, hash: { $first: '$hash' } } }
    ], { allowDiskUse: true })
    for await (const last of lasts) {
      await this.auditSeals.updateOne({ _id: last._id }, { $setOnInsert: this.chain.seal(last._id, last.seq, last.hash) }, { upsert: true })
    }
    await this.migrations.updateOne({ _id: SEAL_V1_CHAINS }, { $setOnInsert: { appliedAt: new Date() } }, { upsert: true })
  }

  private async createCollection (name: string): Promise<void> {
    await this.db.createCollection(name, { writeConcern: { w: 'majority' } }).catch((err: unknown) => {
      if ((err as { code?: unknown }).code !== 48) throw err // NamespaceExists
    })
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.closeClient) await this.client.close()
  }

  async ping (): Promise<StoreHealth> {
    const started = performance.now()
    try {
      await this.db.command({ ping: 1 })
      return { ok: true, latencyMs: performance.now() - started }
    } catch (err) {
      return { ok: false, latencyMs: performance.now() - started, error: (err as Error).message }
    }
  }

  async createUser (user: NewUser): Promise<UserRecord> {
    const now = Date.now()
    const record: UserRecord = { id: newId(now), ...user, createdAt: now, updatedAt: now }
    try {
      await this.users.insertOne({
        _id: record.id,
        email: record.email,
        name: record.name,
        role: record.role,
        passwordHash: record.passwordHash,
        createdAt: toDate(record.createdAt),
        updatedAt: toDate(record.updatedAt)
      })
    } catch (err) {
      if (isDuplicateKey(err)) throw new DuplicateError('email')
      throw err
    }
    return record
  }

  async getUser (id: string): Promise<UserRecord | null> {
    const doc = await this.users.findOne({ _id: id })
    return doc === null ? null : toUser(doc)
  }

  async findUserByEmail (email: string): Promise<UserRecord | null> {
    const doc = await this.users.findOne({ email })
    return doc === null ? null : toUser(doc)
  }

  async updateUser (id: string, patch: UserPatch, audit?: AuditInput): Promise<UserRecord | null> {
    const set: Partial<UserDoc> = { updatedAt: new Date() }
    if (patch.name !== undefined) set.name = patch.name
    if (patch.role !== undefined) set.role = patch.role
    if (patch.passwordHash !== undefined) set.passwordHash = patch.passwordHash
    return await this.transaction(async (session) => {
      const doc = await this.users.findOneAndUpdate({ _id: id }, { $set: set }, { returnDocument: 'after', session })
      if (doc === null) return null
      if (audit !== undefined) await this.appendAuditTx(session, id, audit)
      return toUser(doc)
    })
  }

  async deleteUser (id: string): Promise<boolean> {
    const owner = anonymousOwner(id)
    return await this.transaction(async (session) => {
      await this.keyVersions.deleteMany({ ownerId: id }, { session })
      await this.keys.deleteMany({ ownerId: id }, { session })
      await this.usageHourly.deleteMany({ ownerId: id }, { session })
      await this.usageMonthly.deleteMany({ ownerId: id }, { session })
      await this.idempotency.deleteMany({ ownerId: id }, { session })
      await this.dailyUsage.deleteMany({ ownerId: id }, { session })
      await this.notifications.deleteMany({ ownerId: id }, { session })
      await this.webhooks.deleteOne({ _id: id }, { session })
      await this.deliveries.deleteMany({ ownerId: id }, { session })
      // The anchor follows the events to their anonymous owner, so a pruned chain still verifies.
      const anchor = await this.auditAnchors.findOneAndDelete({ _id: id }, { session })
      if (anchor !== null) {
        await this.auditAnchors.replaceOne({ _id: owner }, { seq: anchor.seq, hash: anchor.hash }, { upsert: true, session })
      }
      // So does the seal of its v1 events: the seal's MAC names the anonymous owner, which does not change.
      const seal = await this.auditSeals.findOneAndDelete({ _id: id }, { session })
      if (seal !== null) {
        await this.auditSeals.replaceOne({ _id: owner }, { seq: seal.seq, hash: seal.hash, mac: seal.mac }, { upsert: true, session })
      }
      await this.vaults.deleteOne({ _id: id }, { session })
      await this.refreshTokens.deleteMany({ userId: id }, { session })
      await this.sessions.deleteMany({ userId: id }, { session })
      // The events stay, chained, with the personal fields blanked; their digest still covers them.
      await this.audit.updateMany({ ownerId: id },
        { $set: { ownerId: owner, sessionId: null, ip: null, detail: {}, anonymised: true } }, { session })
      const result = await this.users.deleteOne({ _id: id }, { session })
      return result.deletedCount > 0
    })
  }

  async createSession (session: NewSession, refreshHash: string): Promise<SessionRecord> {
    const now = Date.now()
    const record: SessionRecord = { id: newId(now), ...session, createdAt: now, lastUsedAt: now, revokedAt: null }
    await this.sessions.insertOne({
      _id: record.id,
      userId: record.userId,
      createdAt: toDate(record.createdAt),
      expiresAt: toDate(record.expiresAt),
      lastUsedAt: toDate(record.lastUsedAt),
      revokedAt: null,
      userAgent: record.userAgent,
      ip: record.ip
    })
    try {
      await this.refreshTokens.insertOne({ _id: refreshHash, sessionId: record.id, userId: record.userId, createdAt: toDate(now), usedAt: null })
    } catch (err) {
      // No transaction here, so undo the session by hand rather than leave one no token can refresh.
      await this.sessions.deleteOne({ _id: record.id }).catch(() => {})
      throw err
    }
    return record
  }

  async getSession (userId: string, id: string): Promise<SessionRecord | null> {
    const doc = await this.sessions.findOne({ _id: id, userId })
    return doc === null ? null : toSession(doc)
  }

  async listSessions (userId: string): Promise<SessionRecord[]> {
    const docs = await this.sessions.find({ userId }).sort({ createdAt: -1, _id: -1 }).toArray()
    return docs.map(toSession)
  }

  async rotateRefreshToken (oldHash: string, newHash: string, now: number): Promise<RefreshOutcome> {
    const usedAt = toDate(now)
    // Claiming the token is the one atomic step: of two concurrent exchanges exactly one gets it.
    const claimed = await this.refreshTokens.findOneAndUpdate({ _id: oldHash, usedAt: null }, { $set: { usedAt } })
    if (claimed === null) {
      const token = await this.refreshTokens.findOne({ _id: oldHash })
      // Unused yet unclaimable means another exchange claimed it and released it, which it only does for a dead session.
      if (token === null || token.usedAt === null) return INVALID
      const session = await this.revokeForReuse(token.sessionId, now)
      return session === null ? INVALID : { status: 'reused', session }
    }

    const release = async () => {
      await this.refreshTokens.updateOne({ _id: oldHash, usedAt }, { $set: { usedAt: null } })
    }
    const current = await this.sessions.findOne({ _id: claimed.sessionId })
    if (current === null || current.revokedAt !== null || current.expiresAt.getTime() <= now) {
      // As in SQLite, refusing a token for a dead session leaves it unused, so presenting it again is not "reuse".
      await release()
      return INVALID
    }
    try {
      await this.refreshTokens.insertOne({ _id: newHash, sessionId: current._id, userId: current.userId, createdAt: usedAt, usedAt: null })
    } catch (err) {
      await release().catch(() => {})
      throw err
    }
    const session = await this.sessions.findOneAndUpdate(
      { _id: current._id }, { $set: { lastUsedAt: usedAt } }, { returnDocument: 'after' })
    return session === null ? INVALID : { status: 'rotated', session: toSession(session) }
  }

  private async revokeForReuse (sessionId: string, now: number): Promise<SessionRecord | null> {
    const revoked = await this.sessions.findOneAndUpdate(
      { _id: sessionId, revokedAt: null }, { $set: { revokedAt: toDate(now) } }, { returnDocument: 'after' })
    if (revoked !== null) return toSession(revoked)
    const doc = await this.sessions.findOne({ _id: sessionId })
    return doc === null ? null : toSession(doc)
  }

  async revokeSession (userId: string, id: string, now: number, audit?: AuditInput): Promise<boolean> {
    return await this.transaction(async (session) => {
      const result = await this.sessions.updateOne({ _id: id, userId, revokedAt: null }, { $set: { revokedAt: toDate(now) } }, { session })
      const revoked = result.modifiedCount > 0
      if (revoked && audit !== undefined) await this.appendAuditTx(session, userId, audit)
      return revoked
    })
  }

  async revokeSessions (userId: string, now: number, exceptId?: string, audit?: AuditInput): Promise<number> {
    const filter: Filter<SessionDoc> = { userId, revokedAt: null }
    if (exceptId !== undefined) filter._id = { $ne: exceptId }
    return await this.transaction(async (session) => {
      const result = await this.sessions.updateMany(filter, { $set: { revokedAt: toDate(now) } }, { session })
      const n = result.modifiedCount
      if (audit !== undefined) await this.appendAuditTx(session, userId, { ...audit, detail: { ...audit.detail, sessions: n } })
      return n
    })
  }

  async createKey (ownerId: string, key: NewKey, first?: NewKeyVersion, audit?: AuditInput): Promise<KeyRecord> {
    const now = key.createdAt ?? Date.now()
    const record: KeyRecord = { ...key, ownerId, createdAt: now, updatedAt: now, lastUsedAt: null, revokedAt: null }
    const doc: KeyDoc = {
      _id: record.id,
      ownerId,
      kind: record.kind,
      name: record.name,
      service: record.service,
      description: record.description,
      environment: record.environment,
      tags: jsonValue(record.tags),
      scopes: jsonValue(record.scopes),
      metadata: jsonValue(record.metadata),
      prefix: record.prefix,
      start: record.start,
      hash: record.hash,
      version: record.version,
      status: record.status,
      recoverable: record.recoverable,
      expiresAt: toDateOrNull(record.expiresAt),
      rotationIntervalDays: record.rotationIntervalDays,
      rotationDueAt: toDateOrNull(record.rotationDueAt),
      monthlyLimit: record.monthlyLimit,
      rateLimit: jsonValue(record.rateLimit),
      createdAt: toDate(record.createdAt),
      updatedAt: toDate(record.updatedAt),
      lastUsedAt: null,
      revokedAt: null,
      search: searchText(record)
    }
    try {
      await this.transaction(async (session) => {
        await this.keys.insertOne(doc, { session })
        if (first !== undefined) await this.insertVersion(session, ownerId, record.id, record.version, first, now)
        if (audit !== undefined) await this.appendAuditTx(session, ownerId, { ...audit, keyId: record.id })
      })
    } catch (err) {
      if (isDuplicateKey(err)) throw new DuplicateError('key')
      throw err
    }
    return record
  }

  private async insertVersion (session: ClientSession, ownerId: string, keyId: string, version: number, v: NewKeyVersion, now: number) {
    await this.keyVersions.insertOne({
      _id: `${keyId}:${version}`,
      keyId,
      ownerId,
      version,
      hash: v.hash,
      start: v.start,
      ciphertext: v.ciphertext,
      createdAt: toDate(now),
      retiredAt: null,
      graceEndsAt: null
    }, { session })
  }

  /** Appends to the owner's chain inside the caller's transaction. */
  private async appendAuditTx (session: ClientSession, ownerId: string, input: AuditInput): Promise<AuditEvent> {
    // After retention pruned every event, the chain continues from its anchor.
    const last = await this.audit.find({ ownerId }, { session, projection: { seq: 1, hash: 1 } }).sort({ seq: -1 }).limit(1).next() ??
      await this.auditAnchors.findOne({ _id: ownerId }, { session })
    const event = this.chain.next(newId(), ownerId, last === null ? null : { seq: last.seq, hash: last.hash }, input, Date.now())
    try {
      await this.audit.insertOne({
        _id: event.id,
        ownerId,
        seq: event.seq,
        action: event.action,
        keyId: event.keyId,
        sessionId: event.sessionId,
        ip: event.ip,
        detail: jsonValue(event.detail),
        createdAt: toDate(event.createdAt),
        prevHash: event.prevHash,
        subjectDigest: event.subjectDigest,
        anonymised: false,
        linkVersion: event.linkVersion,
        hash: event.hash
      }, { session })
    } catch (err) {
      // Not swallowed: the rethrow aborts the transaction, and transaction() runs it again.
      if (isDuplicateKey(err)) throw new AuditConflict(ownerId, err)
      throw err
    }
    return event
  }

  async getKey (ownerId: string, id: string): Promise<KeyRecord | null> {
    const doc = await this.keys.findOne({ _id: id, ownerId }, KEY_READ)
    return doc === null ? null : toKey(doc)
  }

  async listKeys (ownerId: string, query: KeyListQuery): Promise<Page<KeyRecord>> {
    const and: Array<Filter<KeyDoc>> = [{ ownerId }]
    if (query.status !== undefined) and.push({ status: query.status })
    if (query.kind !== undefined) and.push({ kind: query.kind })
    if (query.service !== undefined) and.push({ service: query.service })
    if (query.environment !== undefined) and.push({ environment: query.environment })
    if (query.tag !== undefined) and.push({ tags: query.tag })
    if (query.q !== undefined && query.q !== '') and.push({ search: { $regex: escapeRegex(query.q.toLowerCase()) } })
    if (query.after !== undefined) and.push(keysetFilter(query.sort, query.after, query.descending))
    const direction = query.descending ? -1 : 1
    const docs = await this.keysForList
      .find(and.length === 1 ? and[0] as Filter<KeyDoc> : { $and: and }, KEY_READ)
      .sort({ [query.sort]: direction, _id: direction })
      .limit(query.limit + 1)
      .toArray()
    const items = docs.slice(0, query.limit).map(toKey)
    const last = items[items.length - 1]
    return {
      items,
      next: docs.length > query.limit && last !== undefined ? { value: sortValue(last, query.sort), id: last.id } : null
    }
  }

  async updateKey (ownerId: string, id: string, patch: KeyPatch, audit?: AuditInput): Promise<KeyRecord | null> {
    try {
      return await this.transaction((session) => this.applyKeyPatch(session, ownerId, id, patch, audit))
    } catch (err) {
      if (isDuplicateKey(err)) throw new DuplicateError('key')
      throw err
    }
  }

  /** Applies a patch inside the caller's transaction; null when the owner has no such key. */
  private async applyKeyPatch (session: ClientSession, ownerId: string, id: string, patch: KeyPatch, audit?: AuditInput): Promise<KeyRecord | null> {
    // Revocation is final: checked inside the transaction, so a racing change cannot undo it.
    const state = await this.keys.findOne({ _id: id, ownerId }, { projection: { status: 1 }, session })
    if (state === null) return null
    if (state.status === 'revoked' && patch.status !== 'revoked') throw new KeyRevokedError()
    const set: Record<string, unknown> = {}
    for (const field of KEY_PATCH_FIELDS) {
      if (patch[field] !== undefined) set[field] = storedKeyValue(field, patch[field])
    }
    set.updatedAt = new Date()
    if (SEARCH_FIELDS.some((field) => patch[field] !== undefined)) {
      // Read in the same transaction: a concurrent change to this key makes one of the two writes conflict and retry.
      const current = await this.keys.findOne({ _id: id, ownerId },
        { projection: { name: 1, service: 1, description: 1, tags: 1 }, session })
      if (current === null) return null
      set.search = searchText({
        name: patch.name ?? current.name,
        service: patch.service !== undefined ? patch.service : current.service,
        description: patch.description !== undefined ? patch.description : current.description,
        tags: patch.tags ?? current.tags
      })
    }
    const doc = await this.keys.findOneAndUpdate({ _id: id, ownerId }, { $set: set }, { ...KEY_READ, returnDocument: 'after', session })
    if (doc === null) return null
    if (audit !== undefined) await this.appendAuditTx(session, ownerId, { ...audit, keyId: id })
    return toKey(doc)
  }

  async rotateKey (ownerId: string, id: string, plan: RotationPlan, audit?: AuditInput): Promise<KeyRecord | null> {
    try {
      return await this.transaction(async (session) => {
        const current = await this.keys.findOne({ _id: id, ownerId }, { projection: { version: 1 }, session })
        if (current === null) return null
        await this.keyVersions.updateOne({ keyId: id, ownerId, version: current.version },
          { $set: { retiredAt: toDate(plan.now), graceEndsAt: toDateOrNull(plan.graceEndsAt) } }, { session })
        await this.insertVersion(session, ownerId, id, plan.patch.version, plan.next, plan.now)
        await this.keyVersions.deleteMany({ keyId: id, ownerId, version: { $lte: plan.patch.version - plan.keepPrevious - 1 } }, { session })
        return await this.applyKeyPatch(session, ownerId, id, plan.patch, audit)
      })
    } catch (err) {
      if (isDuplicateKey(err)) throw new DuplicateError('key')
      throw err
    }
  }

  async deleteKey (ownerId: string, id: string): Promise<boolean> {
    return await this.transaction(async (session) => {
      await this.deleteKeyDataTx(session, ownerId, id)
      const result = await this.keys.deleteOne({ _id: id, ownerId }, { session })
      return result.deletedCount > 0
    })
  }

  /** Deletes what hangs off a key (its versions and usage) inside the caller's transaction. */
  private async deleteKeyDataTx (session: ClientSession, ownerId: string, keyId: string): Promise<void> {
    await this.keyVersions.deleteMany({ keyId, ownerId }, { session })
    await this.usageHourly.deleteMany({ keyId, ownerId }, { session })
    await this.dailyUsage.deleteMany({ keyId, ownerId }, { session })
    await this.usageMonthly.deleteMany({ keyId, ownerId }, { session })
  }

  async listKeyVersions (ownerId: string, keyId: string): Promise<KeyVersionRecord[]> {
    const docs = await this.keyVersions.find({ ownerId, keyId }).sort({ version: -1 }).toArray()
    return docs.map(toVersion)
  }

  async getKeyVersion (ownerId: string, keyId: string, version: number): Promise<KeyVersionRecord | null> {
    const doc = await this.keyVersions.findOne({ ownerId, keyId, version })
    return doc === null ? null : toVersion(doc)
  }

  async findKeyByHash (ownerId: string, hash: string): Promise<KeyRecord | null> {
    // The $type clause repeats the partial index's filter, which the planner needs before it will use that index.
    const doc = await this.keys.findOne({ hash: { $eq: hash, $type: 'string' }, ownerId }, KEY_READ)
    return doc === null ? null : toKey(doc)
  }

  async findVersionByHash (ownerId: string, hash: string): Promise<{ key: KeyRecord, version: KeyVersionRecord } | null> {
    const version = await this.keyVersions.findOne({ hash: { $eq: hash, $type: 'string' }, ownerId })
    if (version === null) return null
    const key = await this.keys.findOne({ _id: version.keyId, ownerId }, KEY_READ)
    return key === null ? null : { key: toKey(key), version: toVersion(version) }
  }

  async findCredentialByHash (hash: string): Promise<KeyRecord | null> {
    const doc = await this.keys.findOne({ hash: { $eq: hash, $type: 'string' }, kind: 'issued' }, KEY_READ)
    return doc === null ? null : toKey(doc)
  }

  async keyStats (ownerId: string, now: number): Promise<KeyStats> {
    const nowDate = toDate(now)
    const soon = toDate(now + EXPIRING_SOON_MS)
    const active = { $eq: ['$status', 'active'] }
    const group = (field: string) => [{ $group: { _id: `$${field}`, n: { $sum: 1 } } }]
    const [facets] = await this.keys.aggregate<StatsFacets>([
      { $match: { ownerId } },
      {
        $facet: {
          byStatus: group('status'),
          byKind: group('kind'),
          byService: group('service'),
          byEnvironment: group('environment'),
          counts: [{
            $group: {
              _id: null,
              total: { $sum: 1 },
              expiringSoon: {
                $sum: {
                  $cond: [{ $and: [active, isDate('$expiresAt'), { $gt: ['$expiresAt', nowDate] }, { $lte: ['$expiresAt', soon] }] }, 1, 0]
                }
              },
              rotationDue: {
                $sum: { $cond: [{ $and: [active, isDate('$rotationDueAt'), { $lte: ['$rotationDueAt', nowDate] }] }, 1, 0] }
              }
            }
          }]
        }
      }
    ]).toArray()
    const counts = facets?.counts[0]
    return {
      total: counts?.total ?? 0,
      byStatus: countsBy(facets?.byStatus ?? []),
      byKind: countsBy(facets?.byKind ?? []),
      byService: countsBy(facets?.byService ?? []),
      byEnvironment: countsBy(facets?.byEnvironment ?? []),
      expiringSoon: counts?.expiringSoon ?? 0,
      rotationDue: counts?.rotationDue ?? 0
    }
  }

  /** Adds one delta inside the caller's transaction; the key's new total for the month. */
  private async addUsageTx (session: ClientSession, d: UsageDelta): Promise<UsageTotal> {
    const hour = toDate(d.hour)
    const month = toDate(monthStart(d.hour))
    const inc = { units: d.units, requests: d.requests }
    const hourId = `${d.keyId}:${d.hour}`
    const monthId = `${d.keyId}:${month.getTime()}`
    let total: WithId<UsageMonthlyDoc> | null
    try {
      await this.usageHourly.updateOne({ _id: hourId },
        { $inc: inc, $setOnInsert: { keyId: d.keyId, ownerId: d.ownerId, hour } }, { upsert: true, session })
      total = await this.usageMonthly.findOneAndUpdate({ _id: monthId },
        { $inc: inc, $setOnInsert: { keyId: d.keyId, ownerId: d.ownerId, month } },
        { upsert: true, returnDocument: 'after', session })
    } catch (err) {
      // Two upserts creating the same counter: the loser starts over and then increments the winner's.
      if (isDuplicateKey(err)) throw new CreateConflict(`usage counter of ${d.keyId}`, err)
      throw err
    }
    if (total === null) throw new Error(`usage counter ${monthId} missing after its upsert`)
    const lastUsedAt = toDate(d.lastUsedAt)
    // Only ever forward: a late flush of older usage leaves a newer lastUsedAt alone.
    await this.keys.updateOne({ _id: d.keyId, ownerId: d.ownerId, $or: [{ lastUsedAt: null }, { lastUsedAt: { $lt: lastUsedAt } }] },
      { $set: { lastUsedAt } }, { session })
    return toUsageTotal(total)
  }

  async recordUsage (deltas: UsageDelta[]): Promise<UsageTotal[]> {
    if (deltas.length === 0) return []
    return await this.transaction(async (session) => {
      const totals = new Map<string, UsageTotal>()
      for (const d of deltas) {
        const total = await this.addUsageTx(session, d)
        totals.set(`${total.keyId}:${total.month}`, total)
      }
      return [...totals.values()]
    })
  }

  async recordUsageOnce (ownerId: string, idempotencyKey: string, delta: UsageDelta): Promise<{ duplicate: boolean, total: UsageTotal }> {
    const _id = `${ownerId}:${idempotencyKey}`
    return await this.transaction(async (session) => {
      // Looked up first: a duplicate key inside a transaction aborts it, so the insert is kept for the race.
      const seen = await this.idempotency.findOne({ _id }, { projection: { _id: 1 }, session })
      if (seen === null) {
        try {
          await this.idempotency.insertOne({ _id, ownerId, keyId: delta.keyId, createdAt: new Date() }, { session })
        } catch (err) {
          // A concurrent call with the same key committed after this snapshot; the retry sees its record.
          if (isDuplicateKey(err)) throw new CreateConflict(`idempotency key of ${ownerId}`, err)
          throw err
        }
        return { duplicate: false, total: await this.addUsageTx(session, delta) }
      }
      const month = monthStart(delta.hour)
      const doc = await this.usageMonthly.findOne({ _id: `${delta.keyId}:${month}`, ownerId }, { session })
      const total = doc === null ? { keyId: delta.keyId, month, units: 0, requests: 0 } : toUsageTotal(doc)
      return { duplicate: true, total }
    })
  }

  async monthlyUsage (ownerId: string, month: number, keyIds?: string[]): Promise<UsageTotal[]> {
    if (keyIds !== undefined && keyIds.length === 0) return []
    const filter: Filter<UsageMonthlyDoc> = { ownerId, month: toDate(month) }
    if (keyIds !== undefined) filter.keyId = { $in: keyIds }
    const docs = await this.usageMonthly.find(filter).sort({ keyId: 1 }).toArray()
    return docs.map(toUsageTotal)
  }

  async usageSeries (ownerId: string, keyId: string, fromHour: number, toHour: number): Promise<UsagePoint[]> {
    const docs = await this.usageHourly
      .find({ keyId, ownerId, hour: { $gte: toDate(fromHour), $lt: toDate(toHour) } }, { projection: { hour: 1, units: 1, requests: 1 } })
      .sort({ hour: 1 })
      .toArray()
    return docs.map((doc) => ({ hour: doc.hour.getTime(), units: doc.units, requests: doc.requests }))
  }

  async createNotification (ownerId: string, n: NewNotification): Promise<NotificationRecord | null> {
    const now = Date.now()
    const record: NotificationRecord = { id: newId(now), ownerId, ...n, detail: jsonValue(n.detail), createdAt: now, readAt: null }
    try {
      await this.notifications.insertOne({
        _id: record.id,
        ownerId,
        type: record.type,
        keyId: record.keyId,
        title: record.title,
        detail: record.detail,
        dedupeKey: record.dedupeKey,
        createdAt: toDate(now),
        readAt: null
      })
    } catch (err) {
      // The owner was notified under this dedupe key before.
      if (isDuplicateKey(err)) return null
      throw err
    }
    return record
  }

  async listNotifications (ownerId: string, query: { limit: number, beforeId?: string, unreadOnly?: boolean }): Promise<NotificationRecord[]> {
    if (query.limit <= 0) return []
    const filter: Filter<NotificationDoc> = { ownerId }
    if (query.beforeId !== undefined) filter._id = { $lt: query.beforeId }
    if (query.unreadOnly === true) filter.readAt = null
    const docs = await this.notifications.find(filter).sort({ _id: -1 }).limit(query.limit).toArray()
    return docs.map(toNotification)
  }

  async markNotificationRead (ownerId: string, id: string, now: number): Promise<NotificationRecord | null> {
    // Read once: a notification read before keeps its first readAt.
    const doc = await this.notifications.findOneAndUpdate({ _id: id, ownerId, readAt: null },
      { $set: { readAt: toDate(now) } }, { returnDocument: 'after' }) ??
      await this.notifications.findOne({ _id: id, ownerId })
    return doc === null ? null : toNotification(doc)
  }

  async getWebhook (ownerId: string): Promise<WebhookRecord | null> {
    const doc = await this.webhooks.findOne({ _id: ownerId })
    return doc === null ? null : toWebhook(doc)
  }

  async setWebhook (ownerId: string, webhook: { url: string, secret: string } | null): Promise<WebhookRecord | null> {
    if (webhook === null) {
      await this.webhooks.deleteOne({ _id: ownerId })
      return null
    }
    const now = new Date()
    const doc = await this.webhooks.findOneAndUpdate({ _id: ownerId },
      { $set: { url: webhook.url, secret: webhook.secret, updatedAt: now }, $setOnInsert: { createdAt: now } },
      { upsert: true, returnDocument: 'after' })
    if (doc === null) throw new Error(`webhook of ${ownerId} missing after its upsert`)
    return toWebhook(doc)
  }

  async enqueueDelivery (d: NewDelivery, now: number): Promise<DeliveryRecord | null> {
    const record: DeliveryRecord = {
      id: newId(now), ...d, status: 'pending', attempts: 0, nextAttemptAt: now, lastError: null, createdAt: now, deliveredAt: null
    }
    try {
      await this.deliveries.insertOne({
        _id: record.id,
        ownerId: record.ownerId,
        eventId: record.eventId,
        url: record.url,
        payload: record.payload,
        status: record.status,
        attempts: 0,
        nextAttemptAt: toDate(now),
        lastError: null,
        createdAt: toDate(now),
        deliveredAt: null
      })
    } catch (err) {
      // The event was queued before.
      if (isDuplicateKey(err)) return null
      throw err
    }
    return record
  }

  async dueDeliveries (now: number, limit: number): Promise<DeliveryRecord[]> {
    if (limit <= 0) return []
    const docs = await this.deliveries.find({ status: 'pending', nextAttemptAt: { $lte: toDate(now) } })
      .sort({ nextAttemptAt: 1 })
      .limit(limit)
      .toArray()
    return docs.map(toDelivery)
  }

  async getDelivery (id: string): Promise<DeliveryRecord | null> {
    const doc = await this.deliveries.findOne({ _id: id })
    return doc === null ? null : toDelivery(doc)
  }

  async updateDelivery (id: string, patch: Partial<Pick<DeliveryRecord, 'status' | 'attempts' | 'nextAttemptAt' | 'lastError' | 'deliveredAt'>>): Promise<void> {
    const set: Partial<DeliveryDoc> = {}
    if (patch.status !== undefined) set.status = patch.status
    if (patch.attempts !== undefined) set.attempts = patch.attempts
    if (patch.nextAttemptAt !== undefined) set.nextAttemptAt = toDate(patch.nextAttemptAt)
    if (patch.lastError !== undefined) set.lastError = patch.lastError
    if (patch.deliveredAt !== undefined) set.deliveredAt = toDateOrNull(patch.deliveredAt)
    if (Object.keys(set).length === 0) return
    await this.deliveries.updateOne({ _id: id }, { $set: set })
  }

  async expireKeys (now: number, limit: number): Promise<KeyRecord[]> {
    if (limit <= 0) return []
    const nowDate = toDate(now)
    const due = await this.keys.find({ status: 'active', expiresAt: { $lte: nowDate } }, { projection: { ownerId: 1 } })
      .sort({ _id: 1 })
      .limit(limit)
      .toArray()
    const changed: KeyRecord[] = []
    for (const { _id: id, ownerId } of due) {
      const key = await this.transaction(async (session) => {
        // Checked again in the transaction: a key changed since the scan (revoked, given a later expiry) is left alone.
        const current = await this.keys.findOne({ _id: id, ownerId, status: 'active', expiresAt: { $lte: nowDate } },
          { projection: { expiresAt: 1 }, session })
        if (current === null) return null
        return await this.applyKeyPatch(session, ownerId, id, { status: 'expired' },
          { action: 'key.expired', detail: { expiresAt: fromDateOrNull(current.expiresAt) } })
      })
      if (key !== null) changed.push(key)
    }
    return changed
  }

  async keysExpiringBetween (from: number, to: number, afterId: string, limit: number): Promise<KeyRecord[]> {
    return await this.maintenanceScan({ status: 'active', expiresAt: { $gt: toDate(from), $lte: toDate(to) } }, afterId, limit)
  }

  async keysRotationDue (now: number, afterId: string, limit: number): Promise<KeyRecord[]> {
    return await this.maintenanceScan({ status: 'active', rotationDueAt: { $lte: toDate(now) } }, afterId, limit)
  }

  async keysWithMonthlyLimit (afterId: string, limit: number): Promise<KeyRecord[]> {
    return await this.maintenanceScan({ status: 'active', monthlyLimit: { $ne: null } }, afterId, limit)
  }

  /** Keys of every owner matching the filter, by id after `afterId`. */
  private async maintenanceScan (filter: Filter<KeyDoc>, afterId: string, limit: number): Promise<KeyRecord[]> {
    if (limit <= 0) return []
    const docs = await this.keys.find({ ...filter, _id: { $gt: afterId } }, KEY_READ).sort({ _id: 1 }).limit(limit).toArray()
    return docs.map(toKey)
  }

  async purgeRevokedKeys (revokedBefore: number, limit: number): Promise<number> {
    if (limit <= 0) return 0
    const before = toDate(revokedBefore)
    const revoked = await this.keys.find({ status: 'revoked', revokedAt: { $lt: before } }, { projection: { ownerId: 1 } })
      .limit(limit)
      .toArray()
    let purged = 0
    for (const { _id: id, ownerId } of revoked) {
      const deleted = await this.transaction(async (session) => {
        const result = await this.keys.deleteOne({ _id: id, ownerId, status: 'revoked', revokedAt: { $lt: before } }, { session })
        if (result.deletedCount === 0) return false
        await this.deleteKeyDataTx(session, ownerId, id)
        return true
      })
      if (deleted) purged++
    }
    return purged
  }

  async purgeUsageHourly (before: number, limit: number): Promise<number> {
    if (limit <= 0) return 0
    const docs = await this.usageHourly.find({ hour: { $lt: toDate(before) } }, { projection: { _id: 1 } }).limit(limit).toArray()
    if (docs.length === 0) return 0
    const result = await this.usageHourly.deleteMany({ _id: { $in: docs.map((doc) => doc._id) } })
    return result.deletedCount
  }

  async purgeSessions (expiredBefore: number, limit: number): Promise<number> {
    if (limit <= 0) return 0
    return await this.transaction(async (session) => {
      const docs = await this.sessions.find({ expiresAt: { $lt: toDate(expiredBefore) } }, { projection: { _id: 1 }, session })
        .limit(limit)
        .toArray()
      if (docs.length === 0) return 0
      const ids = docs.map((doc) => doc._id)
      await this.refreshTokens.deleteMany({ sessionId: { $in: ids } }, { session })
      const result = await this.sessions.deleteMany({ _id: { $in: ids } }, { session })
      return result.deletedCount
    })
  }

  async purgeIdempotency (before: number, limit: number): Promise<number> {
    if (limit <= 0) return 0
    const docs = await this.idempotency.find({ createdAt: { $lt: toDate(before) } }, { projection: { _id: 1 } }).limit(limit).toArray()
    if (docs.length === 0) return 0
    const result = await this.idempotency.deleteMany({ _id: { $in: docs.map((doc) => doc._id) } })
    return result.deletedCount
  }

  async purgeAudit (before: number, limit: number): Promise<number> {
    if (limit <= 0) return 0
    // Read in the transaction: an account deleted meanwhile (its events moved to the anonymous owner) makes the
    // deletion conflict and run again, so the anchor always names the events' current owner.
    return await this.transaction(async (session) => {
      const docs = await this.audit.find({ createdAt: { $lt: toDate(before) } }, { projection: { ownerId: 1, seq: 1, hash: 1 }, session })
        .sort({ ownerId: 1, seq: 1 })
        .limit(limit)
        .toArray()
      if (docs.length === 0) return 0
      const anchors = new Map<string, { seq: number, hash: string }>()
      for (const doc of docs) anchors.set(doc.ownerId, { seq: doc.seq, hash: doc.hash })
      await this.audit.deleteMany({ _id: { $in: docs.map((doc) => doc._id) } }, { session })
      for (const [ownerId, anchor] of anchors) {
        // Only ever forward: both fields are computed from the stored seq (a missing one counts as 0).
        const higher = { $gt: [anchor.seq, { $ifNull: ['$seq', 0] }] }
        await this.auditAnchors.updateOne({ _id: ownerId }, [{
          $set: {
            seq: { $cond: [higher, anchor.seq, '$seq'] },
            hash: { $cond: [higher, { $literal: anchor.hash }, '$hash'] }
          }
        }], { upsert: true, session })
      }
      return docs.length
    })
  }

  async auditAnchor (ownerId: string): Promise<{ seq: number, hash: string }> {
    const doc = await this.auditAnchors.findOne({ _id: ownerId })
    return doc === null ? { seq: 0, hash: GENESIS_HASH } : { seq: doc.seq, hash: doc.hash }
  }

  async auditSeal (ownerId: string): Promise<AuditSeal | null> {
    const doc = await this.auditSeals.findOne({ _id: ownerId })
    return doc === null ? null : { seq: doc.seq, hash: doc.hash, mac: doc.mac }
  }

  async rollupDaily (fromHour: number, toHour: number): Promise<number> {
    const fromDay = fromHour - (fromHour % DAY_MS)
    const toDay = toHour - (toHour % DAY_MS) + DAY_MS
    const groups = await this.usageHourly.aggregate<DailyGroup>([
      { $match: { hour: { $gte: toDate(fromDay), $lt: toDate(toDay) } } },
      {
        $group: {
          // A date minus its milliseconds into the UTC day is the day's start, still a date.
          _id: { keyId: '$keyId', ownerId: '$ownerId', day: { $subtract: ['$hour', { $mod: [{ $toLong: '$hour' }, DAY_MS] }] } },
          units: { $sum: '$units' },
          requests: { $sum: '$requests' }
        }
      }
    ]).toArray()
    if (groups.length === 0) return 0
    // Set, not incremented: running the rollup again over the same hours writes the same totals.
    await this.dailyUsage.bulkWrite(groups.map((g) => ({
      updateOne: {
        filter: { _id: `${g._id.keyId}:${g._id.day.getTime()}` },
        update: {
          $set: { units: g.units, requests: g.requests },
          $setOnInsert: { keyId: g._id.keyId, ownerId: g._id.ownerId, day: g._id.day }
        },
        upsert: true
      }
    })), { ordered: false })
    return groups.length
  }

  async usageDaily (ownerId: string, keyId: string, fromDay: number, toDay: number): Promise<UsagePoint[]> {
    const docs = await this.dailyUsage
      .find({ keyId, ownerId, day: { $gte: toDate(fromDay), $lt: toDate(toDay) } }, { projection: { day: 1, units: 1, requests: 1 } })
      .sort({ day: 1 })
      .toArray()
    return docs.map((doc) => ({ hour: doc.day.getTime(), units: doc.units, requests: doc.requests }))
  }

  async recordJobRun (run: Omit<JobRunRecord, 'id'>): Promise<JobRunRecord> {
    const record: JobRunRecord = { id: newId(run.startedAt), ...run, durationMs: Math.round(run.durationMs), result: jsonValue(run.result) }
    await this.jobRunDocs.insertOne({
      _id: record.id,
      job: record.job,
      startedAt: toDate(record.startedAt),
      durationMs: record.durationMs,
      ok: record.ok,
      result: record.result,
      error: record.error
    })
    // Bounded history: the last JOB_RUNS_KEPT runs of each job.
    const old = await this.jobRunDocs.find({ job: run.job }, { projection: { _id: 1 } })
      .sort({ startedAt: -1, _id: -1 })
      .skip(JOB_RUNS_KEPT)
      .toArray()
    if (old.length > 0) await this.jobRunDocs.deleteMany({ _id: { $in: old.map((doc) => doc._id) } })
    return record
  }

  async jobRuns (job: string, limit: number): Promise<JobRunRecord[]> {
    if (limit <= 0) return []
    const docs = await this.jobRunDocs.find({ job }).sort({ startedAt: -1, _id: -1 }).limit(limit).toArray()
    return docs.map(toJobRun)
  }

  async saveStatsSnapshot (snapshot: StatsSnapshot): Promise<void> {
    await this.snapshots.updateOne({ _id: toDate(snapshot.at) }, { $set: { data: jsonValue(snapshot.data) } }, { upsert: true })
  }

  async statsSnapshots (from: number, to: number, limit: number): Promise<StatsSnapshot[]> {
    if (limit <= 0) return []
    const docs = await this.snapshots.find({ _id: { $gte: toDate(from), $lt: toDate(to) } }).sort({ _id: 1 }).limit(limit).toArray()
    return docs.map((doc) => ({ at: doc._id.getTime(), data: doc.data ?? {} }))
  }

  async purgeStatsSnapshots (before: number): Promise<number> {
    const result = await this.snapshots.deleteMany({ _id: { $lt: toDate(before) } })
    return result.deletedCount
  }

  async systemCounts (now: number): Promise<SystemCounts> {
    const [users, keys, activeKeys, sessions, unreadNotifications, pendingDeliveries] = await Promise.all([
      this.users.countDocuments({}),
      this.keys.countDocuments({}),
      this.keys.countDocuments({ status: 'active' }),
      this.sessions.countDocuments({ revokedAt: null, expiresAt: { $gt: toDate(now) } }),
      this.notifications.countDocuments({ readAt: null }),
      this.deliveries.countDocuments({ status: 'pending' })
    ])
    return { users, keys, activeKeys, sessions, unreadNotifications, pendingDeliveries }
  }

  async acquireLease (name: string, holder: string, ttlMs: number, now: number): Promise<boolean> {
    const expiresAt = now + ttlMs
    // Renewed by its holder or taken over once expired, in one atomic step.
    const taken = await this.leases.updateOne({ _id: name, $or: [{ holder }, { expiresAt: { $lte: now } }] },
      { $set: { holder, expiresAt } })
    if (taken.matchedCount > 0) return true
    try {
      await this.leases.insertOne({ _id: name, holder, expiresAt })
      return true
    } catch (err) {
      // Someone else holds it (or created it a moment ago).
      if (isDuplicateKey(err)) return false
      throw err
    }
  }

  async releaseLease (name: string, holder: string): Promise<void> {
    await this.leases.deleteOne({ _id: name, holder })
  }

  async getVault (userId: string): Promise<VaultRecord | null> {
    const doc = await this.vaults.findOne({ _id: userId })
    return doc === null ? null : toVault(doc)
  }

  async saveVault (userId: string, vault: Pick<VaultRecord, 'kdf' | 'wrappedKey'>, expectedRevision: number | null, audit?: AuditInput): Promise<boolean> {
    const now = new Date()
    try {
      return await this.transaction(async (session) => {
        let saved: boolean
        if (expectedRevision === null) {
          // An upsert that only sets on insert: it creates the vault or, if one exists, changes nothing.
          const result = await this.vaults.updateOne({ _id: userId }, {
            $setOnInsert: { kdf: vault.kdf, wrappedKey: vault.wrappedKey, revision: 1, createdAt: now, updatedAt: now }
          }, { upsert: true, session })
          saved = result.upsertedCount > 0
        } else {
          const result = await this.vaults.updateOne({ _id: userId, revision: expectedRevision }, {
            $set: { kdf: vault.kdf, wrappedKey: vault.wrappedKey, updatedAt: now },
            $inc: { revision: 1 }
          }, { session })
          saved = result.matchedCount > 0
        }
        if (saved && audit !== undefined) await this.appendAuditTx(session, userId, audit)
        return saved
      })
    } catch (err) {
      // A create racing another create: the other one got there first.
      if (expectedRevision === null && isDuplicateKey(err)) return false
      throw err
    }
  }

  async appendAudit (ownerId: string, input: AuditInput): Promise<AuditEvent> {
    return await this.transaction((session) => this.appendAuditTx(session, ownerId, input))
  }

  async listAudit (ownerId: string, query: AuditQuery): Promise<AuditEvent[]> {
    // limit(0) means "no limit" to MongoDB; SQLite's LIMIT 0 returns nothing.
    if (query.limit <= 0) return []
    const filter: Filter<AuditDoc> = { ownerId }
    if (query.action !== undefined) filter.action = query.action
    if (query.keyId !== undefined) filter.keyId = query.keyId
    if (query.beforeSeq !== undefined) filter.seq = { $lt: query.beforeSeq }
    const docs = await this.audit.find(filter).sort({ seq: -1 }).limit(query.limit).toArray()
    return docs.map(toAudit)
  }

  async auditChain (ownerId: string, afterSeq: number, limit: number): Promise<AuditEvent[]> {
    if (limit <= 0) return []
    const docs = await this.audit.find({ ownerId, seq: { $gt: afterSeq } }).sort({ seq: 1 }).limit(limit).toArray()
    return docs.map(toAudit)
  }
}
