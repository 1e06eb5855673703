import type { Collection, Db, Filter, MongoClient, ReadPreferenceLike, WithId } from 'mongodb'
import { newId } from './ids.ts'
import { searchText, sortValue } from './shared.ts'
import {
  DuplicateError,
  type Environment, type KeyKind, type KeyListQuery, type KeyPatch, type KeyRateLimit, type KeyRecord, type KeySortField,
  type KeyStatus, type NewKey, type NewSession, type NewUser, type Page, type RefreshOutcome, type Role, type SessionRecord,
  type Store, type StoreHealth, type UserPatch, type UserRecord
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
  expiresAt: Date | null
  rotationIntervalDays: number | null
  rotationDueAt: Date | null
  monthlyLimit: number | null
  rateLimit: KeyRateLimit | null
  createdAt: Date
  updatedAt: Date
  lastUsedAt: Date | null
  /** searchText() of the key, kept in step on every write so `q` is one regex over one field. */
  search: string
}

export interface MongoStoreOptions {
  /** Closed by close(); leave unset when the caller owns the client. */
  client?: MongoClient
  /** Where listKeys reads; a lagging secondary may miss a key written a moment ago. */
  listReadPreference?: ReadPreferenceLike
}

const INVALID: RefreshOutcome = { status: 'invalid' }

const KEY_PATCH_FIELDS = [
  'name', 'service', 'description', 'environment', 'tags', 'scopes', 'metadata', 'expiresAt', 'rotationIntervalDays',
  'rotationDueAt', 'monthlyLimit', 'rateLimit', 'status', 'hash', 'start', 'prefix', 'version', 'lastUsedAt'
] as const satisfies ReadonlyArray<keyof KeyPatch>

const SEARCH_FIELDS = ['name', 'service', 'description', 'tags'] as const satisfies ReadonlyArray<keyof KeyPatch>
const TIME_FIELDS = new Set<string>(['expiresAt', 'rotationDueAt', 'lastUsedAt', 'createdAt'])
const NULLABLE_SORT_FIELDS = new Set<KeySortField>(['lastUsedAt', 'expiresAt'])
const UPDATE_ATTEMPTS = 5
// Records never carry the search text, so reads leave it on the server.
const KEY_READ = { projection: { search: 0 } }

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
    expiresAt: fromDateOrNull(doc.expiresAt),
    rotationIntervalDays: doc.rotationIntervalDays ?? null,
    rotationDueAt: fromDateOrNull(doc.rotationDueAt),
    monthlyLimit: doc.monthlyLimit ?? null,
    rateLimit: doc.rateLimit ?? null,
    createdAt: doc.createdAt.getTime(),
    updatedAt: doc.updatedAt.getTime(),
    lastUsedAt: fromDateOrNull(doc.lastUsedAt)
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

export class MongoStore implements Store {
  readonly kind = 'mongo' as const
  private readonly db: Db
  private readonly client: MongoClient | undefined
  private closed = false
  private readonly users: Collection<UserDoc>
  private readonly sessions: Collection<SessionDoc>
  private readonly refreshTokens: Collection<RefreshTokenDoc>
  private readonly keys: Collection<KeyDoc>
  private readonly keysForList: Collection<KeyDoc>

  constructor (db: Db, options: MongoStoreOptions = {}) {
    this.db = db
    this.client = options.client
    // Primary reads even if the connection string asks otherwise: most reads follow a write of the same caller.
    const primary = { writeConcern: { w: 'majority' as const }, readPreference: 'primary' as const }
    this.users = db.collection<UserDoc>('users', primary)
    this.sessions = db.collection<SessionDoc>('sessions', primary)
    this.refreshTokens = db.collection<RefreshTokenDoc>('refresh_tokens', primary)
    this.keys = db.collection<KeyDoc>('keys', primary)
    this.keysForList = db.collection<KeyDoc>('keys', { readPreference: options.listReadPreference ?? 'secondaryPreferred' })
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
      ])
    ])
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.client?.close()
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

  async updateUser (id: string, patch: UserPatch): Promise<UserRecord | null> {
    const set: Partial<UserDoc> = { updatedAt: new Date() }
    if (patch.name !== undefined) set.name = patch.name
    if (patch.role !== undefined) set.role = patch.role
    if (patch.passwordHash !== undefined) set.passwordHash = patch.passwordHash
    const doc = await this.users.findOneAndUpdate({ _id: id }, { $set: set }, { returnDocument: 'after' })
    return doc === null ? null : toUser(doc)
  }

  async deleteUser (id: string): Promise<boolean> {
    // Owned data first: if this stops halfway, a retry still finds the user and finishes the job.
    await this.keys.deleteMany({ ownerId: id })
    await this.refreshTokens.deleteMany({ userId: id })
    await this.sessions.deleteMany({ userId: id })
    const result = await this.users.deleteOne({ _id: id })
    return result.deletedCount > 0
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

  async revokeSession (userId: string, id: string, now: number): Promise<boolean> {
    const result = await this.sessions.updateOne({ _id: id, userId, revokedAt: null }, { $set: { revokedAt: toDate(now) } })
    return result.modifiedCount > 0
  }

  async revokeSessions (userId: string, now: number, exceptId?: string): Promise<number> {
    const filter: Filter<SessionDoc> = { userId, revokedAt: null }
    if (exceptId !== undefined) filter._id = { $ne: exceptId }
    const result = await this.sessions.updateMany(filter, { $set: { revokedAt: toDate(now) } })
    return result.modifiedCount
  }

  async createKey (ownerId: string, key: NewKey): Promise<KeyRecord> {
    const now = key.createdAt ?? Date.now()
    const record: KeyRecord = { ...key, ownerId, createdAt: now, updatedAt: now, lastUsedAt: null }
    try {
      await this.keys.insertOne({
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
        expiresAt: toDateOrNull(record.expiresAt),
        rotationIntervalDays: record.rotationIntervalDays,
        rotationDueAt: toDateOrNull(record.rotationDueAt),
        monthlyLimit: record.monthlyLimit,
        rateLimit: jsonValue(record.rateLimit),
        createdAt: toDate(record.createdAt),
        updatedAt: toDate(record.updatedAt),
        lastUsedAt: null,
        search: searchText(record)
      })
    } catch (err) {
      if (isDuplicateKey(err)) throw new DuplicateError('key')
      throw err
    }
    return record
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

  async updateKey (ownerId: string, id: string, patch: KeyPatch): Promise<KeyRecord | null> {
    const set: Record<string, unknown> = {}
    for (const field of KEY_PATCH_FIELDS) {
      if (patch[field] !== undefined) set[field] = storedKeyValue(field, patch[field])
    }
    const touchesSearch = SEARCH_FIELDS.some((field) => patch[field] !== undefined)
    for (let attempt = 0; attempt < UPDATE_ATTEMPTS; attempt++) {
      const filter: Filter<KeyDoc> = { _id: id, ownerId }
      const update: Record<string, unknown> = { ...set, updatedAt: new Date() }
      if (touchesSearch) {
        const current = await this.keys.findOne({ _id: id, ownerId }, { projection: { name: 1, service: 1, description: 1, tags: 1 } })
        if (current === null) return null
        update.search = searchText({
          name: patch.name ?? current.name,
          service: patch.service !== undefined ? patch.service : current.service,
          description: patch.description !== undefined ? patch.description : current.description,
          tags: patch.tags ?? current.tags
        })
        // Only write if the fields the search text was built from are still as read (optimistic concurrency).
        Object.assign(filter, { name: current.name, service: current.service, description: current.description, tags: current.tags })
      }
      let doc: WithId<KeyDoc> | null
      try {
        doc = await this.keys.findOneAndUpdate(filter, { $set: update }, { ...KEY_READ, returnDocument: 'after' })
      } catch (err) {
        if (isDuplicateKey(err)) throw new DuplicateError('key')
        throw err
      }
      if (doc !== null) return toKey(doc)
      if (!touchesSearch) return null
    }
    throw new Error(`key ${id} kept changing during the update; try again`)
  }

  async deleteKey (ownerId: string, id: string): Promise<boolean> {
    const result = await this.keys.deleteOne({ _id: id, ownerId })
    return result.deletedCount > 0
  }

  async findKeyByHash (ownerId: string, hash: string): Promise<KeyRecord | null> {
    // The $type clause repeats the partial index's filter, which the planner needs before it will use that index.
    const doc = await this.keys.findOne({ hash: { $eq: hash, $type: 'string' }, ownerId }, KEY_READ)
    return doc === null ? null : toKey(doc)
  }

  async findCredentialByHash (hash: string): Promise<KeyRecord | null> {
    const doc = await this.keys.findOne({ hash: { $eq: hash, $type: 'string' }, kind: 'issued' }, KEY_READ)
    return doc === null ? null : toKey(doc)
  }
}
