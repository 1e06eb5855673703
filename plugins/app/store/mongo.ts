import type {
  ClientSession, Collection, Db, Filter, MongoClient, ReadPreferenceLike, TransactionOptions, WithId
} from 'mongodb'
import { newId } from './ids.ts'
import { anonymousOwner, monthStart, nextAuditEvent, searchText, sortValue } from './shared.ts'
import {
  DuplicateError,
  type AuditEvent, type AuditInput, type AuditQuery, type Environment, type KeyKind, type KeyListQuery, type KeyPatch,
  type KeyRateLimit, type KeyRecord, type KeySortField, type KeyStats, type KeyStatus, type KeyVersionRecord, type NewKey,
  type NewKeyVersion, type NewSession, type NewUser, type Page, type RefreshOutcome, type Role, type RotationPlan,
  type SessionRecord, type Store, type StoreHealth, type UsageDelta, type UsagePoint, type UsageTotal, type UserPatch,
  type UserRecord, type VaultRecord
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
const EXPIRING_SOON_MS = 7 * 86_400_000
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
    hash: doc.hash
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
    this.keysForList = db.collection<KeyDoc>('keys', { readPreference: options.listReadPreference ?? 'secondaryPreferred' })
    this.keyVersions = db.collection<KeyVersionDoc>('key_versions', primary)
    this.vaults = db.collection<VaultDoc>('vaults', primary)
    this.audit = db.collection<AuditDoc>('audit_events', primary)
    this.usageHourly = db.collection<UsageHourlyDoc>('usage_hourly', primary)
    this.usageMonthly = db.collection<UsageMonthlyDoc>('usage_monthly', primary)
    this.idempotency = db.collection<IdempotencyDoc>('idempotency', primary)
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
      this.sessions.createIndexes([{ key: { userId: 1, createdAt: -1 } }]),
      this.refreshTokens.createIndexes([{ key: { sessionId: 1 } }, { key: { userId: 1 } }]),
      this.keys.createIndexes([
        { key: { ownerId: 1, createdAt: 1, _id: 1 } },
        { key: { ownerId: 1, name: 1, _id: 1 } },
        { key: { ownerId: 1, lastUsedAt: 1, _id: 1 } },
        { key: { ownerId: 1, expiresAt: 1, _id: 1 } },
        { key: { ownerId: 1, status: 1 } },
        { key: { ownerId: 1, tags: 1 } },
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
        { key: { ownerId: 1, keyId: 1, seq: -1 } }
      ]),
      this.usageHourly.createIndexes([{ key: { ownerId: 1, hour: 1 } }, { key: { keyId: 1, hour: 1 } }]),
      this.usageMonthly.createIndexes([{ key: { ownerId: 1, month: 1 } }]),
      // For the cleanup job that drops old idempotency records.
      this.idempotency.createIndexes([{ key: { createdAt: 1 } }]),
      // vaults needs no index beyond _id; created up front so no transaction has to create it.
      this.db.createCollection('vaults', { writeConcern: { w: 'majority' } }).catch((err: unknown) => {
        if ((err as { code?: unknown }).code !== 48) throw err // NamespaceExists
      })
    ])
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
    const last = await this.audit.find({ ownerId }, { session, projection: { seq: 1, hash: 1 } }).sort({ seq: -1 }).limit(1).next()
    const event = nextAuditEvent(newId(), ownerId, last === null ? null : { seq: last.seq, hash: last.hash }, input, Date.now())
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
      await this.keyVersions.deleteMany({ keyId: id, ownerId }, { session })
      await this.usageHourly.deleteMany({ keyId: id, ownerId }, { session })
      await this.usageMonthly.deleteMany({ keyId: id, ownerId }, { session })
      const result = await this.keys.deleteOne({ _id: id, ownerId }, { session })
      return result.deletedCount > 0
    })
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
