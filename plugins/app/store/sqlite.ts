import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'libsql'
import { newId } from './ids.ts'
import type { AuditChain } from './audit-chain.ts'
import { anonymousOwner, GENESIS_HASH, monthStart, searchText, sortValue } from './shared.ts'
import {
  DuplicateError, KeyRevokedError, StoreBusyError,
  type AuditEvent, type AuditInput, type AuditQuery, type AuditSeal, type KeyListQuery, type KeyPatch, type KeyRecord, type KeyStats,
  type KeyVersionRecord, type NewKey, type NewKeyVersion, type NewSession, type NewUser, type Page, type RefreshOutcome,
  type RotationPlan, type SessionRecord, type Store, type StoreHealth, type UsageDelta, type UsagePoint, type UsageTotal,
  type UserPatch, type UserRecord, type VaultRecord, type NotificationRecord, type NewNotification, type WebhookRecord,
  type DeliveryRecord, type NewDelivery, type JobRunRecord, type StatsSnapshot, type SystemCounts
} from './types.ts'

type Row = Record<string, unknown>
type Db = InstanceType<typeof Database>

/**
 * Seals each owner's last audit event: every event stored before link versions is v1, and no v1
 * event is accepted past its owner's seal (v1 links can be recomputed without the server's key).
 */
function sealV1Chains (db: Db, chain: AuditChain): void {
  const lasts = db.prepare(`SELECT e.owner_id, e.seq, e.hash FROM audit_events e
    JOIN (SELECT owner_id, MAX(seq) AS seq FROM audit_events GROUP BY owner_id) m ON m.owner_id = e.owner_id AND m.seq = e.seq`).all() as Row[]
  const insert = db.prepare('INSERT INTO audit_seals (owner_id, seq, hash, mac) VALUES (?, ?, ?, ?)')
  for (const last of lasts) {
    const seal = chain.seal(last.owner_id as string, last.seq as number, last.hash as string)
    insert.run(last.owner_id, seal.seq, seal.hash, seal.mac)
  }
}

/**
 * Schema migrations, applied in order and recorded in schema_migrations: SQL, or a step that needs
 * the audit chain's key. Append only: a shipped migration is never edited.
 */
const MIGRATIONS: Array<string | ((db: Db, chain: AuditChain) => void)> = [
  `CREATE TABLE users (
     id TEXT PRIMARY KEY,
     email TEXT NOT NULL UNIQUE,
     name TEXT,
     role TEXT NOT NULL,
     password_hash TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL
   );
   CREATE TABLE sessions (
     id TEXT PRIMARY KEY,
     user_id TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     last_used_at INTEGER NOT NULL,
     revoked_at INTEGER,
     user_agent TEXT,
     ip TEXT
   );
   CREATE INDEX sessions_user ON sessions (user_id, created_at);
   CREATE TABLE refresh_tokens (
     hash TEXT PRIMARY KEY,
     session_id TEXT NOT NULL,
     user_id TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     used_at INTEGER
   );
   CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
   CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
   CREATE TABLE keys (
     id TEXT PRIMARY KEY,
     owner_id TEXT NOT NULL,
     kind TEXT NOT NULL,
     name TEXT NOT NULL,
     service TEXT,
     description TEXT,
     environment TEXT NOT NULL,
     tags TEXT NOT NULL,
     scopes TEXT NOT NULL,
     metadata TEXT NOT NULL,
     prefix TEXT NOT NULL,
     start TEXT NOT NULL,
     hash TEXT UNIQUE,
     version INTEGER NOT NULL,
     status TEXT NOT NULL,
     expires_at INTEGER,
     rotation_interval_days INTEGER,
     rotation_due_at INTEGER,
     monthly_limit INTEGER,
     rate_limit TEXT,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     last_used_at INTEGER,
     search TEXT NOT NULL
   );
   CREATE INDEX keys_owner_created ON keys (owner_id, created_at, id);
   CREATE INDEX keys_owner_name ON keys (owner_id, name, id);
   CREATE INDEX keys_owner_last_used ON keys (owner_id, last_used_at, id);
   CREATE INDEX keys_owner_expires ON keys (owner_id, expires_at, id);
   CREATE INDEX keys_owner_status ON keys (owner_id, status);`,
  `ALTER TABLE keys ADD COLUMN recoverable INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE keys ADD COLUMN revoked_at INTEGER;
   CREATE TABLE key_versions (
     key_id TEXT NOT NULL,
     owner_id TEXT NOT NULL,
     version INTEGER NOT NULL,
     hash TEXT UNIQUE,
     start TEXT NOT NULL,
     ciphertext TEXT,
     created_at INTEGER NOT NULL,
     retired_at INTEGER,
     grace_ends_at INTEGER,
     PRIMARY KEY (key_id, version)
   );
   CREATE INDEX key_versions_owner ON key_versions (owner_id, key_id);
   CREATE TABLE vaults (
     user_id TEXT PRIMARY KEY,
     kdf TEXT NOT NULL,
     wrapped_key TEXT NOT NULL,
     revision INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL
   );
   CREATE TABLE audit_events (
     id TEXT PRIMARY KEY,
     owner_id TEXT NOT NULL,
     seq INTEGER NOT NULL,
     action TEXT NOT NULL,
     key_id TEXT,
     session_id TEXT,
     ip TEXT,
     detail TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     prev_hash TEXT NOT NULL,
     subject_digest TEXT NOT NULL,
     anonymised INTEGER NOT NULL DEFAULT 0,
     hash TEXT NOT NULL,
     UNIQUE (owner_id, seq)
   );
   CREATE INDEX audit_owner_action ON audit_events (owner_id, action, seq);
   CREATE INDEX audit_owner_key ON audit_events (owner_id, key_id, seq);`,
  `CREATE TABLE usage_hourly (
     key_id TEXT NOT NULL,
     hour INTEGER NOT NULL,
     owner_id TEXT NOT NULL,
     units INTEGER NOT NULL,
     requests INTEGER NOT NULL,
     PRIMARY KEY (key_id, hour)
   );
   CREATE INDEX usage_hourly_owner ON usage_hourly (owner_id, hour);
   CREATE TABLE usage_monthly (
     key_id TEXT NOT NULL,
     month INTEGER NOT NULL,
     owner_id TEXT NOT NULL,
     units INTEGER NOT NULL,
     requests INTEGER NOT NULL,
     PRIMARY KEY (key_id, month)
   );
   CREATE INDEX usage_monthly_owner ON usage_monthly (owner_id, month);
   CREATE TABLE idempotency (
     owner_id TEXT NOT NULL,
     idem_key TEXT NOT NULL,
     key_id TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     PRIMARY KEY (owner_id, idem_key)
   );`,
  `CREATE TABLE notifications (
     id TEXT PRIMARY KEY,
     owner_id TEXT NOT NULL,
     type TEXT NOT NULL,
     key_id TEXT,
     title TEXT NOT NULL,
     detail TEXT NOT NULL,
     dedupe_key TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     read_at INTEGER,
     UNIQUE (owner_id, dedupe_key)
   );
   CREATE INDEX notifications_owner ON notifications (owner_id, id);
   CREATE TABLE webhooks (
     owner_id TEXT PRIMARY KEY,
     url TEXT NOT NULL,
     secret TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL
   );
   CREATE TABLE deliveries (
     id TEXT PRIMARY KEY,
     owner_id TEXT NOT NULL,
     event_id TEXT NOT NULL UNIQUE,
     url TEXT NOT NULL,
     payload TEXT NOT NULL,
     status TEXT NOT NULL,
     attempts INTEGER NOT NULL,
     next_attempt_at INTEGER NOT NULL,
     last_error TEXT,
     created_at INTEGER NOT NULL,
     delivered_at INTEGER
   );
   CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
   CREATE INDEX deliveries_owner ON deliveries (owner_id);
   CREATE TABLE job_runs (
     id TEXT PRIMARY KEY,
     job TEXT NOT NULL,
     started_at INTEGER NOT NULL,
     duration_ms INTEGER NOT NULL,
     ok INTEGER NOT NULL,
     result TEXT NOT NULL,
     error TEXT
   );
   CREATE INDEX job_runs_job ON job_runs (job, started_at);
   CREATE TABLE stats_snapshots (at INTEGER PRIMARY KEY, data TEXT NOT NULL);
   CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at INTEGER NOT NULL);
   CREATE TABLE audit_anchors (owner_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL);
   CREATE INDEX audit_created ON audit_events (created_at);
   CREATE TABLE usage_daily (
     key_id TEXT NOT NULL,
     day INTEGER NOT NULL,
     owner_id TEXT NOT NULL,
     units INTEGER NOT NULL,
     requests INTEGER NOT NULL,
     PRIMARY KEY (key_id, day)
   );
   CREATE INDEX usage_daily_owner ON usage_daily (owner_id, day);
   CREATE INDEX keys_expires ON keys (status, expires_at);
   CREATE INDEX keys_rotation ON keys (status, rotation_due_at);
   CREATE INDEX keys_revoked ON keys (status, revoked_at);
   CREATE INDEX sessions_expires ON sessions (expires_at);
   CREATE INDEX usage_hourly_hour ON usage_hourly (hour);`,
  `ALTER TABLE audit_events ADD COLUMN link_version INTEGER NOT NULL DEFAULT 1;
   CREATE TABLE audit_seals (owner_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL, mac TEXT NOT NULL);`,
  sealV1Chains
]

const USER_COLUMNS = 'id, email, name, role, password_hash, created_at, updated_at'
const SESSION_COLUMNS = 'id, user_id, created_at, expires_at, last_used_at, revoked_at, user_agent, ip'

const KEY_FIELD_COLUMNS: Record<keyof KeyPatch, string> = {
  name: 'name',
  service: 'service',
  description: 'description',
  environment: 'environment',
  tags: 'tags',
  scopes: 'scopes',
  metadata: 'metadata',
  expiresAt: 'expires_at',
  rotationIntervalDays: 'rotation_interval_days',
  rotationDueAt: 'rotation_due_at',
  monthlyLimit: 'monthly_limit',
  rateLimit: 'rate_limit',
  status: 'status',
  hash: 'hash',
  start: 'start',
  prefix: 'prefix',
  version: 'version',
  lastUsedAt: 'last_used_at',
  recoverable: 'recoverable',
  revokedAt: 'revoked_at'
}

const JSON_FIELDS = new Set<keyof KeyPatch>(['tags', 'scopes', 'metadata', 'rateLimit'])

const SORT_COLUMNS = {
  createdAt: 'created_at',
  name: 'name',
  lastUsedAt: 'COALESCE(last_used_at, -1)',
  expiresAt: 'COALESCE(expires_at, -1)'
} as const

function toUser (row: Row): UserRecord {
  return {
    id: row.id as string,
    email: row.email as string,
    name: row.name as string | null,
    role: row.role as UserRecord['role'],
    passwordHash: row.password_hash as string,
    createdAt: row.created_at as number,
    updatedAt: row.updated_at as number
  }
}

function toSession (row: Row): SessionRecord {
  return {
    id: row.id as string,
    userId: row.user_id as string,
    createdAt: row.created_at as number,
    expiresAt: row.expires_at as number,
    lastUsedAt: row.last_used_at as number,
    revokedAt: row.revoked_at as number | null,
    userAgent: row.user_agent as string | null,
    ip: row.ip as string | null
  }
}

function toKey (row: Row): KeyRecord {
  return {
    id: row.id as string,
    ownerId: row.owner_id as string,
    kind: row.kind as KeyRecord['kind'],
    name: row.name as string,
    service: row.service as string | null,
    description: row.description as string | null,
    environment: row.environment as KeyRecord['environment'],
    tags: JSON.parse(row.tags as string),
    scopes: JSON.parse(row.scopes as string),
    metadata: JSON.parse(row.metadata as string),
    prefix: row.prefix as string,
    start: row.start as string,
    hash: row.hash as string | null,
    version: row.version as number,
    status: row.status as KeyRecord['status'],
    expiresAt: row.expires_at as number | null,
    rotationIntervalDays: row.rotation_interval_days as number | null,
    rotationDueAt: row.rotation_due_at as number | null,
    monthlyLimit: row.monthly_limit as number | null,
    rateLimit: row.rate_limit === null ? null : JSON.parse(row.rate_limit as string),
    recoverable: row.recoverable === 1,
    createdAt: row.created_at as number,
    updatedAt: row.updated_at as number,
    lastUsedAt: row.last_used_at as number | null,
    revokedAt: row.revoked_at as number | null
  }
}

function toVersion (row: Row): KeyVersionRecord {
  return {
    keyId: row.key_id as string,
    ownerId: row.owner_id as string,
    version: row.version as number,
    hash: row.hash as string | null,
    start: row.start as string,
    ciphertext: row.ciphertext as string | null,
    createdAt: row.created_at as number,
    retiredAt: row.retired_at as number | null,
    graceEndsAt: row.grace_ends_at as number | null
  }
}

function toAudit (row: Row): AuditEvent {
  return {
    id: row.id as string,
    ownerId: row.owner_id as string,
    seq: row.seq as number,
    action: row.action as string,
    keyId: row.key_id as string | null,
    sessionId: row.session_id as string | null,
    ip: row.ip as string | null,
    detail: JSON.parse(row.detail as string),
    createdAt: row.created_at as number,
    prevHash: row.prev_hash as string,
    subjectDigest: row.subject_digest as string,
    anonymised: row.anonymised === 1,
    linkVersion: row.link_version as number,
    hash: row.hash as string
  }
}

function toNotification (row: Row): NotificationRecord {
  return {
    id: row.id as string,
    ownerId: row.owner_id as string,
    type: row.type as NotificationRecord['type'],
    keyId: row.key_id as string | null,
    title: row.title as string,
    detail: JSON.parse(row.detail as string),
    dedupeKey: row.dedupe_key as string,
    createdAt: row.created_at as number,
    readAt: row.read_at as number | null
  }
}

function toDelivery (row: Row): DeliveryRecord {
  return {
    id: row.id as string,
    ownerId: row.owner_id as string,
    eventId: row.event_id as string,
    url: row.url as string,
    payload: row.payload as string,
    status: row.status as DeliveryRecord['status'],
    attempts: row.attempts as number,
    nextAttemptAt: row.next_attempt_at as number,
    lastError: row.last_error as string | null,
    createdAt: row.created_at as number,
    deliveredAt: row.delivered_at as number | null
  }
}

function toJobRun (row: Row): JobRunRecord {
  return {
    id: row.id as string,
    job: row.job as string,
    startedAt: row.started_at as number,
    durationMs: row.duration_ms as number,
    ok: row.ok === 1,
    result: JSON.parse(row.result as string),
    error: row.error as string | null
  }
}

function toVault (row: Row): VaultRecord {
  return {
    userId: row.user_id as string,
    kdf: row.kdf as string,
    wrappedKey: row.wrapped_key as string,
    revision: row.revision as number,
    createdAt: row.created_at as number,
    updatedAt: row.updated_at as number
  }
}

function isUniqueViolation (err: unknown): boolean {
  const e = err as { code?: string, message?: string }
  return e?.code === 'SQLITE_CONSTRAINT_UNIQUE' || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' ||
    /UNIQUE constraint failed/.test(e?.message ?? '')
}

function escapeLike (text: string): string {
  return text.replace(/[\\%_]/g, (c) => '\\' + c)
}

export interface SqliteStoreOptions {
  /** Folder holding keyward.db; ':memory:' is not accepted, the store is always a real file. */
  dataDir: string
  /** How long a write waits for another connection's lock (libsql waits synchronously). */
  busyTimeoutMs?: number
  /** After a write found the file locked past the busy timeout, writes fail fast this long. */
  busyBackoffMs?: number
  /** Links audit events under the server's key. */
  auditChain: AuditChain
}

function isBusy (err: unknown): boolean {
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' && (code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY_') || code === 'SQLITE_LOCKED')
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const
  readonly path: string
  private db: Db
  private statements = new Map<string, ReturnType<Db['prepare']>>()
  private readonly busyTimeoutMs: number
  private readonly busyBackoffMs: number
  private readonly chain: AuditChain
  /** Until then writes try the lock without waiting for it. */
  private busyUntil = 0

  constructor (options: SqliteStoreOptions) {
    this.busyTimeoutMs = options.busyTimeoutMs ?? 250
    this.busyBackoffMs = options.busyBackoffMs ?? 1000
    this.chain = options.auditChain
    mkdirSync(options.dataDir, { recursive: true })
    this.path = join(options.dataDir, 'keyward.db')
    this.db = new Database(this.path)
    // WAL lets readers proceed during a write and several processes share the file safely.
    this.db.pragma('journal_mode = WAL')
    this.db.pragma(`busy_timeout = ${this.busyTimeoutMs}`)
    this.db.pragma('synchronous = NORMAL')
    this.db.pragma('foreign_keys = ON')
  }

  private stmt (sql: string) {
    let stmt = this.statements.get(sql)
    if (stmt === undefined) {
      stmt = this.db.prepare(sql)
      this.statements.set(sql, stmt)
    }
    return stmt
  }

  private get (sql: string, ...params: unknown[]): Row | undefined {
    return this.stmt(sql).get(params) as Row | undefined
  }

  private all (sql: string, ...params: unknown[]): Row[] {
    return this.stmt(sql).all(params) as Row[]
  }

  /** One statement; outside a transaction it takes the write lock itself, so it is guarded too. */
  private run (sql: string, ...params: unknown[]): number {
    const stmt = this.stmt(sql)
    if (this.db.inTransaction) return stmt.run(params).changes
    return this.locking(() => stmt.run(params).changes)
  }

  /**
   * Runs fn in a write transaction taken up front, so concurrent writers queue on the busy
   * timeout instead of failing. A lock held past that timeout (a long transaction of another
   * process) is a StoreBusyError. For `busyBackoffMs` after one, writes try the lock without
   * waiting: each wait blocks the event loop, so a stuck lock costs one wait per backoff period
   * instead of one per write, and writes succeed again as soon as the lock is released.
   */
  private write<T> (fn: () => T): T {
    return this.locking(() => this.db.transaction(fn).immediate())
  }

  private locking<T> (fn: () => T): T {
    const probing = this.busyUntil > Date.now()
    if (probing) this.db.pragma('busy_timeout = 0')
    try {
      return fn()
    } catch (err) {
      if (!isBusy(err)) throw err
      if (!probing) this.busyUntil = Date.now() + this.busyBackoffMs
      throw new StoreBusyError()
    } finally {
      if (probing) this.db.pragma(`busy_timeout = ${this.busyTimeoutMs}`)
    }
  }

  async init (): Promise<void> {
    this.write(() => {
      this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)')
      const row = this.db.prepare('SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations').get() as Row
      for (let version = (row.v as number) + 1; version <= MIGRATIONS.length; version++) {
        const migration = MIGRATIONS[version - 1] as (typeof MIGRATIONS)[number]
        if (typeof migration === 'string') this.db.exec(migration)
        else migration(this.db, this.chain)
        this.db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(version, Date.now())
      }
    })
  }

  /** The schema version applied; used by tests and the health report. */
  schemaVersion (): number {
    return (this.db.prepare('SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations').get() as Row).v as number
  }

  /** SQLite's own consistency check; 'ok' when the file is sound. */
  integrityCheck (): string {
    const rows = this.db.pragma('integrity_check') as Array<{ integrity_check: string }>
    return rows.map((r) => r.integrity_check).join('\n')
  }

  async close (): Promise<void> {
    if (!this.db.open) return
    this.statements.clear()
    this.db.close()
  }

  async ping (): Promise<StoreHealth> {
    const started = performance.now()
    try {
      this.get('SELECT 1 AS ok')
      return { ok: true, latencyMs: performance.now() - started }
    } catch (err) {
      return { ok: false, latencyMs: performance.now() - started, error: (err as Error).message }
    }
  }

  async createUser (user: NewUser): Promise<UserRecord> {
    const now = Date.now()
    const record: UserRecord = { id: newId(now), ...user, createdAt: now, updatedAt: now }
    try {
      this.run(`INSERT INTO users (${USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`,
        record.id, record.email, record.name, record.role, record.passwordHash, record.createdAt, record.updatedAt)
    } catch (err) {
      if (isUniqueViolation(err)) throw new DuplicateError('email')
      throw err
    }
    return record
  }

  async getUser (id: string): Promise<UserRecord | null> {
    const row = this.get(`SELECT ${USER_COLUMNS} FROM users WHERE id = ?`, id)
    return row === undefined ? null : toUser(row)
  }

  async findUserByEmail (email: string): Promise<UserRecord | null> {
    const row = this.get(`SELECT ${USER_COLUMNS} FROM users WHERE email = ?`, email)
    return row === undefined ? null : toUser(row)
  }

  async updateUser (id: string, patch: UserPatch, audit?: AuditInput): Promise<UserRecord | null> {
    const sets: string[] = []
    const params: unknown[] = []
    if (patch.name !== undefined) { sets.push('name = ?'); params.push(patch.name) }
    if (patch.role !== undefined) { sets.push('role = ?'); params.push(patch.role) }
    if (patch.passwordHash !== undefined) { sets.push('password_hash = ?'); params.push(patch.passwordHash) }
    sets.push('updated_at = ?')
    params.push(Date.now(), id)
    const changed = this.write(() => {
      const n = this.run(`UPDATE users SET ${sets.join(', ')} WHERE id = ?`, ...params)
      if (n > 0 && audit !== undefined) this.appendAuditTx(id, audit)
      return n
    })
    return changed === 0 ? null : this.getUser(id)
  }

  async deleteUser (id: string): Promise<boolean> {
    return this.write(() => {
      this.run('DELETE FROM key_versions WHERE owner_id = ?', id)
      this.run('DELETE FROM keys WHERE owner_id = ?', id)
      this.run('DELETE FROM usage_hourly WHERE owner_id = ?', id)
      this.run('DELETE FROM usage_monthly WHERE owner_id = ?', id)
      this.run('DELETE FROM idempotency WHERE owner_id = ?', id)
      this.run('DELETE FROM usage_daily WHERE owner_id = ?', id)
      this.run('DELETE FROM notifications WHERE owner_id = ?', id)
      this.run('DELETE FROM webhooks WHERE owner_id = ?', id)
      this.run('DELETE FROM deliveries WHERE owner_id = ?', id)
      this.run('UPDATE audit_anchors SET owner_id = ? WHERE owner_id = ?', anonymousOwner(id), id)
      this.run('UPDATE audit_seals SET owner_id = ? WHERE owner_id = ?', anonymousOwner(id), id)
      this.run('DELETE FROM vaults WHERE user_id = ?', id)
      this.run('DELETE FROM refresh_tokens WHERE user_id = ?', id)
      this.run('DELETE FROM sessions WHERE user_id = ?', id)
      this.run("UPDATE audit_events SET owner_id = ?, session_id = NULL, ip = NULL, detail = '{}', anonymised = 1 WHERE owner_id = ?",
        anonymousOwner(id), id)
      return this.run('DELETE FROM users WHERE id = ?', id) > 0
    })
  }

  async createSession (session: NewSession, refreshHash: string): Promise<SessionRecord> {
    const now = Date.now()
    const record: SessionRecord = { id: newId(now), ...session, createdAt: now, lastUsedAt: now, revokedAt: null }
    this.write(() => {
      this.run(`INSERT INTO sessions (${SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        record.id, record.userId, record.createdAt, record.expiresAt, record.lastUsedAt, null, record.userAgent, record.ip)
      this.run('INSERT INTO refresh_tokens (hash, session_id, user_id, created_at, used_at) VALUES (?, ?, ?, ?, NULL)',
        refreshHash, record.id, record.userId, now)
    })
    return record
  }

  async getSession (userId: string, id: string): Promise<SessionRecord | null> {
    const row = this.get(`SELECT ${SESSION_COLUMNS} FROM sessions WHERE id = ? AND user_id = ?`, id, userId)
    return row === undefined ? null : toSession(row)
  }

  async listSessions (userId: string): Promise<SessionRecord[]> {
    return this.all(`SELECT ${SESSION_COLUMNS} FROM sessions WHERE user_id = ? ORDER BY created_at DESC, id DESC`, userId).map(toSession)
  }

  async rotateRefreshToken (oldHash: string, newHash: string, now: number): Promise<RefreshOutcome> {
    return this.write((): RefreshOutcome => {
      const token = this.get('SELECT session_id, user_id, used_at FROM refresh_tokens WHERE hash = ?', oldHash)
      if (token === undefined) return { status: 'invalid' }
      const row = this.get(`SELECT ${SESSION_COLUMNS} FROM sessions WHERE id = ?`, token.session_id)
      if (row === undefined) return { status: 'invalid' }
      const session = toSession(row)
      if (token.used_at !== null) {
        if (session.revokedAt === null) {
          this.run('UPDATE sessions SET revoked_at = ? WHERE id = ?', now, session.id)
          session.revokedAt = now
        }
        return { status: 'reused', session }
      }
      if (session.revokedAt !== null || session.expiresAt <= now) return { status: 'invalid' }
      this.run('UPDATE refresh_tokens SET used_at = ? WHERE hash = ?', now, oldHash)
      this.run('INSERT INTO refresh_tokens (hash, session_id, user_id, created_at, used_at) VALUES (?, ?, ?, ?, NULL)',
        newHash, session.id, session.userId, now)
      this.run('UPDATE sessions SET last_used_at = ? WHERE id = ?', now, session.id)
      session.lastUsedAt = now
      return { status: 'rotated', session }
    })
  }

  async revokeSession (userId: string, id: string, now: number, audit?: AuditInput): Promise<boolean> {
    return this.write(() => {
      const n = this.run('UPDATE sessions SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL', now, id, userId)
      if (n > 0 && audit !== undefined) this.appendAuditTx(userId, audit)
      return n > 0
    })
  }

  async revokeSessions (userId: string, now: number, exceptId?: string, audit?: AuditInput): Promise<number> {
    return this.write(() => {
      const n = this.run('UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL AND id != ?',
        now, userId, exceptId ?? '')
      if (audit !== undefined) this.appendAuditTx(userId, { ...audit, detail: { ...audit.detail, sessions: n } })
      return n
    })
  }

  async createKey (ownerId: string, key: NewKey, first?: NewKeyVersion, audit?: AuditInput): Promise<KeyRecord> {
    const now = key.createdAt ?? Date.now()
    const record: KeyRecord = { ...key, ownerId, createdAt: now, updatedAt: now, lastUsedAt: null, revokedAt: null }
    try {
      this.write(() => {
        this.run(`INSERT INTO keys (id, owner_id, kind, name, service, description, environment, tags, scopes, metadata,
            prefix, start, hash, version, status, recoverable, expires_at, rotation_interval_days, rotation_due_at,
            monthly_limit, rate_limit, created_at, updated_at, last_used_at, revoked_at, search)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        record.id, ownerId, record.kind, record.name, record.service, record.description, record.environment,
        JSON.stringify(record.tags), JSON.stringify(record.scopes), JSON.stringify(record.metadata), record.prefix,
        record.start, record.hash, record.version, record.status, record.recoverable ? 1 : 0, record.expiresAt,
        record.rotationIntervalDays, record.rotationDueAt, record.monthlyLimit,
        record.rateLimit === null ? null : JSON.stringify(record.rateLimit), record.createdAt, record.updatedAt, null, null,
        searchText(record))
        if (first !== undefined) this.insertVersion(ownerId, record.id, record.version, first, now)
        if (audit !== undefined) this.appendAuditTx(ownerId, { ...audit, keyId: record.id })
      })
    } catch (err) {
      if (isUniqueViolation(err)) throw new DuplicateError('key')
      throw err
    }
    return record
  }

  private insertVersion (ownerId: string, keyId: string, version: number, v: NewKeyVersion, now: number) {
    this.run(`INSERT INTO key_versions (key_id, owner_id, version, hash, start, ciphertext, created_at, retired_at, grace_ends_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)`, keyId, ownerId, version, v.hash, v.start, v.ciphertext, now)
  }

  private appendAuditTx (ownerId: string, input: AuditInput): AuditEvent {
    // After retention pruned every event, the chain continues from its anchor.
    const last = this.get('SELECT seq, hash FROM audit_events WHERE owner_id = ? ORDER BY seq DESC LIMIT 1', ownerId) ??
      this.get('SELECT seq, hash FROM audit_anchors WHERE owner_id = ?', ownerId)
    const event = this.chain.next(newId(), ownerId, last === undefined ? null : { seq: last.seq as number, hash: last.hash as string }, input, Date.now())
    this.run(`INSERT INTO audit_events (id, owner_id, seq, action, key_id, session_id, ip, detail, created_at, prev_hash,
        subject_digest, anonymised, link_version, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`,
    event.id, ownerId, event.seq, event.action, event.keyId, event.sessionId, event.ip, JSON.stringify(event.detail),
    event.createdAt, event.prevHash, event.subjectDigest, event.linkVersion, event.hash)
    return event
  }

  async getKey (ownerId: string, id: string): Promise<KeyRecord | null> {
    const row = this.get('SELECT * FROM keys WHERE id = ? AND owner_id = ?', id, ownerId)
    return row === undefined ? null : toKey(row)
  }

  async listKeys (ownerId: string, query: KeyListQuery): Promise<Page<KeyRecord>> {
    const where = ['owner_id = ?']
    const params: unknown[] = [ownerId]
    if (query.status !== undefined) { where.push('status = ?'); params.push(query.status) }
    if (query.kind !== undefined) { where.push('kind = ?'); params.push(query.kind) }
    if (query.service !== undefined) { where.push('service = ?'); params.push(query.service) }
    if (query.environment !== undefined) { where.push('environment = ?'); params.push(query.environment) }
    if (query.tag !== undefined) {
      where.push('EXISTS (SELECT 1 FROM json_each(keys.tags) WHERE json_each.value = ?)')
      params.push(query.tag)
    }
    if (query.q !== undefined && query.q !== '') {
      where.push("search LIKE ? ESCAPE '\\'")
      params.push(`%${escapeLike(query.q.toLowerCase())}%`)
    }
    const column = SORT_COLUMNS[query.sort]
    const direction = query.descending ? 'DESC' : 'ASC'
    if (query.after !== undefined) {
      const op = query.descending ? '<' : '>'
      const value = query.after.value ?? -1
      where.push(`(${column} ${op} ? OR (${column} = ? AND id ${op} ?))`)
      params.push(value, value, query.after.id)
    }
    params.push(query.limit + 1)
    const rows = this.all(`SELECT * FROM keys WHERE ${where.join(' AND ')} ORDER BY ${column} ${direction}, id ${direction} LIMIT ?`, ...params)
    const items = rows.slice(0, query.limit).map(toKey)
    const last = items[items.length - 1]
    return {
      items,
      next: rows.length > query.limit && last !== undefined ? { value: sortValue(last, query.sort), id: last.id } : null
    }
  }

  async updateKey (ownerId: string, id: string, patch: KeyPatch, audit?: AuditInput): Promise<KeyRecord | null> {
    return this.write(() => this.applyKeyPatch(ownerId, id, patch, audit))
  }

  /** Applies a patch inside the caller's transaction. */
  private applyKeyPatch (ownerId: string, id: string, patch: KeyPatch, audit?: AuditInput): KeyRecord | null {
    const current = this.get('SELECT * FROM keys WHERE id = ? AND owner_id = ?', id, ownerId)
    if (current === undefined) return null
    if (current.status === 'revoked' && patch.status !== 'revoked') throw new KeyRevokedError()
    const sets: string[] = []
    const params: unknown[] = []
    const merged = toKey(current)
    const assign = merged as unknown as Record<string, unknown>
    for (const [field, value] of Object.entries(patch) as Array<[keyof KeyPatch, unknown]>) {
      if (value === undefined) continue
      sets.push(`${KEY_FIELD_COLUMNS[field]} = ?`)
      params.push(JSON_FIELDS.has(field) && value !== null ? JSON.stringify(value) : typeof value === 'boolean' ? Number(value) : value)
      assign[field] = value
    }
    const updatedAt = Date.now()
    sets.push('updated_at = ?', 'search = ?')
    params.push(updatedAt, searchText(merged), id, ownerId)
    try {
      this.run(`UPDATE keys SET ${sets.join(', ')} WHERE id = ? AND owner_id = ?`, ...params)
    } catch (err) {
      if (isUniqueViolation(err)) throw new DuplicateError('key')
      throw err
    }
    if (audit !== undefined) this.appendAuditTx(ownerId, { ...audit, keyId: id })
    return { ...merged, updatedAt }
  }

  async rotateKey (ownerId: string, id: string, plan: RotationPlan, audit?: AuditInput): Promise<KeyRecord | null> {
    return this.write(() => {
      const current = this.get('SELECT version FROM keys WHERE id = ? AND owner_id = ?', id, ownerId)
      if (current === undefined) return null
      this.run('UPDATE key_versions SET retired_at = ?, grace_ends_at = ? WHERE key_id = ? AND owner_id = ? AND version = ?',
        plan.now, plan.graceEndsAt, id, ownerId, current.version)
      this.insertVersion(ownerId, id, plan.patch.version, plan.next, plan.now)
      this.run('DELETE FROM key_versions WHERE key_id = ? AND owner_id = ? AND version <= ?', id, ownerId, plan.patch.version - plan.keepPrevious - 1)
      return this.applyKeyPatch(ownerId, id, plan.patch, audit)
    })
  }

  async deleteKey (ownerId: string, id: string): Promise<boolean> {
    return this.write(() => {
      this.run('DELETE FROM key_versions WHERE key_id = ? AND owner_id = ?', id, ownerId)
      this.run('DELETE FROM usage_hourly WHERE key_id = ? AND owner_id = ?', id, ownerId)
      this.run('DELETE FROM usage_monthly WHERE key_id = ? AND owner_id = ?', id, ownerId)
      this.run('DELETE FROM usage_daily WHERE key_id = ? AND owner_id = ?', id, ownerId)
      return this.run('DELETE FROM keys WHERE id = ? AND owner_id = ?', id, ownerId) > 0
    })
  }

  async listKeyVersions (ownerId: string, keyId: string): Promise<KeyVersionRecord[]> {
    return this.all('SELECT * FROM key_versions WHERE key_id = ? AND owner_id = ? ORDER BY version DESC', keyId, ownerId).map(toVersion)
  }

  async getKeyVersion (ownerId: string, keyId: string, version: number): Promise<KeyVersionRecord | null> {
    const row = this.get('SELECT * FROM key_versions WHERE key_id = ? AND owner_id = ? AND version = ?', keyId, ownerId, version)
    return row === undefined ? null : toVersion(row)
  }

  async findVersionByHash (ownerId: string, hash: string): Promise<{ key: KeyRecord, version: KeyVersionRecord } | null> {
    const version = this.get('SELECT * FROM key_versions WHERE hash = ? AND owner_id = ?', hash, ownerId)
    if (version === undefined) return null
    const key = this.get('SELECT * FROM keys WHERE id = ? AND owner_id = ?', version.key_id, ownerId)
    return key === undefined ? null : { key: toKey(key), version: toVersion(version) }
  }

  async keyStats (ownerId: string, now: number): Promise<KeyStats> {
    const group = (column: string) => Object.fromEntries(
      this.all(`SELECT ${column} AS k, COUNT(*) AS n FROM keys WHERE owner_id = ? GROUP BY ${column}`, ownerId)
        .map((r) => [r.k === null ? 'none' : String(r.k), r.n as number]))
    const counts = this.get(`SELECT COUNT(*) AS total,
        SUM(CASE WHEN status = 'active' AND expires_at IS NOT NULL AND expires_at > ? AND expires_at <= ? THEN 1 ELSE 0 END) AS expiring,
        SUM(CASE WHEN status = 'active' AND rotation_due_at IS NOT NULL AND rotation_due_at <= ? THEN 1 ELSE 0 END) AS due
      FROM keys WHERE owner_id = ?`, now, now + 7 * 86_400_000, now, ownerId) as Row
    return {
      total: counts.total as number,
      byStatus: group('status'),
      byKind: group('kind'),
      byService: group('service'),
      byEnvironment: group('environment'),
      expiringSoon: (counts.expiring as number | null) ?? 0,
      rotationDue: (counts.due as number | null) ?? 0
    }
  }

  private addUsage (d: UsageDelta): UsageTotal {
    const month = monthStart(d.hour)
    this.run(`INSERT INTO usage_hourly (key_id, hour, owner_id, units, requests) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (key_id, hour) DO UPDATE SET units = units + excluded.units, requests = requests + excluded.requests`,
    d.keyId, d.hour, d.ownerId, d.units, d.requests)
    const total = this.get(`INSERT INTO usage_monthly (key_id, month, owner_id, units, requests) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (key_id, month) DO UPDATE SET units = units + excluded.units, requests = requests + excluded.requests
      RETURNING units, requests`, d.keyId, month, d.ownerId, d.units, d.requests) as Row
    this.run('UPDATE keys SET last_used_at = MAX(COALESCE(last_used_at, 0), ?) WHERE id = ? AND owner_id = ?', d.lastUsedAt, d.keyId, d.ownerId)
    return { keyId: d.keyId, month, units: total.units as number, requests: total.requests as number }
  }

  async recordUsage (deltas: UsageDelta[]): Promise<UsageTotal[]> {
    if (deltas.length === 0) return []
    return this.write(() => {
      const totals = new Map<string, UsageTotal>()
      for (const d of deltas) {
        const total = this.addUsage(d)
        totals.set(`${total.keyId}:${total.month}`, total)
      }
      return [...totals.values()]
    })
  }

  async recordUsageOnce (ownerId: string, idempotencyKey: string, delta: UsageDelta): Promise<{ duplicate: boolean, total: UsageTotal }> {
    return this.write(() => {
      const fresh = this.run(`INSERT INTO idempotency (owner_id, idem_key, key_id, created_at) VALUES (?, ?, ?, ?)
        ON CONFLICT (owner_id, idem_key) DO NOTHING`, ownerId, idempotencyKey, delta.keyId, Date.now()) > 0
      if (fresh) return { duplicate: false, total: this.addUsage(delta) }
      const month = monthStart(delta.hour)
      const row = this.get('SELECT units, requests FROM usage_monthly WHERE key_id = ? AND month = ? AND owner_id = ?', delta.keyId, month, ownerId)
      return { duplicate: true, total: { keyId: delta.keyId, month, units: (row?.units as number) ?? 0, requests: (row?.requests as number) ?? 0 } }
    })
  }

  async monthlyUsage (ownerId: string, month: number, keyIds?: string[]): Promise<UsageTotal[]> {
    const rows = keyIds === undefined
      ? this.all('SELECT key_id, units, requests FROM usage_monthly WHERE owner_id = ? AND month = ?', ownerId, month)
      : this.all(`SELECT key_id, units, requests FROM usage_monthly WHERE owner_id = ? AND month = ? AND key_id IN (${keyIds.map(() => '?').join(',')})`,
        ownerId, month, ...keyIds)
    return rows.map((r) => ({ keyId: r.key_id as string, month, units: r.units as number, requests: r.requests as number }))
  }

  async usageSeries (ownerId: string, keyId: string, fromHour: number, toHour: number): Promise<UsagePoint[]> {
    return this.all('SELECT hour, units, requests FROM usage_hourly WHERE key_id = ? AND owner_id = ? AND hour >= ? AND hour < ? ORDER BY hour',
      keyId, ownerId, fromHour, toHour).map((r) => ({ hour: r.hour as number, units: r.units as number, requests: r.requests as number }))
  }

  async createNotification (ownerId: string, n: NewNotification): Promise<NotificationRecord | null> {
    const now = Date.now()
    const record: NotificationRecord = { id: newId(now), ownerId, ...n, createdAt: now, readAt: null }
    const inserted = this.run(`INSERT INTO notifications (id, owner_id, type, key_id, title, detail, dedupe_key, created_at, read_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL) ON CONFLICT (owner_id, dedupe_key) DO NOTHING`,
    record.id, ownerId, n.type, n.keyId, n.title, JSON.stringify(n.detail), n.dedupeKey, now)
    return inserted > 0 ? record : null
  }

  async listNotifications (ownerId: string, query: { limit: number, beforeId?: string, unreadOnly?: boolean }): Promise<NotificationRecord[]> {
    const where = ['owner_id = ?']
    const params: unknown[] = [ownerId]
    if (query.beforeId !== undefined) { where.push('id < ?'); params.push(query.beforeId) }
    if (query.unreadOnly === true) where.push('read_at IS NULL')
    params.push(query.limit)
    return this.all(`SELECT * FROM notifications WHERE ${where.join(' AND ')} ORDER BY id DESC LIMIT ?`, ...params).map(toNotification)
  }

  async markNotificationRead (ownerId: string, id: string, now: number): Promise<NotificationRecord | null> {
    this.run('UPDATE notifications SET read_at = ? WHERE id = ? AND owner_id = ? AND read_at IS NULL', now, id, ownerId)
    const row = this.get('SELECT * FROM notifications WHERE id = ? AND owner_id = ?', id, ownerId)
    return row === undefined ? null : toNotification(row)
  }

  async getWebhook (ownerId: string): Promise<WebhookRecord | null> {
    const row = this.get('SELECT * FROM webhooks WHERE owner_id = ?', ownerId)
    return row === undefined
      ? null
      : { ownerId, url: row.url as string, secret: row.secret as string, createdAt: row.created_at as number, updatedAt: row.updated_at as number }
  }

  async setWebhook (ownerId: string, webhook: { url: string, secret: string } | null): Promise<WebhookRecord | null> {
    if (webhook === null) {
      this.run('DELETE FROM webhooks WHERE owner_id = ?', ownerId)
      return null
    }
    const now = Date.now()
    this.run(`INSERT INTO webhooks (owner_id, url, secret, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (owner_id) DO UPDATE SET url = excluded.url, secret = excluded.secret, updated_at = excluded.updated_at`,
    ownerId, webhook.url, webhook.secret, now, now)
    return this.getWebhook(ownerId)
  }

  async enqueueDelivery (d: NewDelivery, now: number): Promise<DeliveryRecord | null> {
    const record: DeliveryRecord = { id: newId(now), ...d, status: 'pending', attempts: 0, nextAttemptAt: now, lastError: null, createdAt: now, deliveredAt: null }
    const inserted = this.run(`INSERT INTO deliveries (id, owner_id, event_id, url, payload, status, attempts, next_attempt_at, last_error, created_at, delivered_at)
      VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, NULL, ?, NULL) ON CONFLICT (event_id) DO NOTHING`,
    record.id, d.ownerId, d.eventId, d.url, d.payload, now, now)
    return inserted > 0 ? record : null
  }

  async dueDeliveries (now: number, limit: number): Promise<DeliveryRecord[]> {
    return this.all("SELECT * FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?", now, limit).map(toDelivery)
  }

  async getDelivery (id: string): Promise<DeliveryRecord | null> {
    const row = this.get('SELECT * FROM deliveries WHERE id = ?', id)
    return row === undefined ? null : toDelivery(row)
  }

  async updateDelivery (id: string, patch: Partial<Pick<DeliveryRecord, 'status' | 'attempts' | 'nextAttemptAt' | 'lastError' | 'deliveredAt'>>): Promise<void> {
    const columns: Record<string, string> = { status: 'status', attempts: 'attempts', nextAttemptAt: 'next_attempt_at', lastError: 'last_error', deliveredAt: 'delivered_at' }
    const entries = Object.entries(patch).filter(([, v]) => v !== undefined)
    if (entries.length === 0) return
    this.run(`UPDATE deliveries SET ${entries.map(([k]) => `${columns[k]} = ?`).join(', ')} WHERE id = ?`, ...entries.map(([, v]) => v), id)
  }

  async expireKeys (now: number, limit: number): Promise<KeyRecord[]> {
    return this.write(() => {
      const rows = this.all("SELECT * FROM keys WHERE status = 'active' AND expires_at IS NOT NULL AND expires_at <= ? ORDER BY id LIMIT ?", now, limit)
      const changed: KeyRecord[] = []
      for (const row of rows) {
        const key = this.applyKeyPatch(row.owner_id as string, row.id as string, { status: 'expired' }, { action: 'key.expired', detail: { expiresAt: row.expires_at } })
        if (key !== null) changed.push(key)
      }
      return changed
    })
  }

  async keysExpiringBetween (from: number, to: number, afterId: string, limit: number): Promise<KeyRecord[]> {
    return this.all("SELECT * FROM keys WHERE status = 'active' AND expires_at > ? AND expires_at <= ? AND id > ? ORDER BY id LIMIT ?", from, to, afterId, limit).map(toKey)
  }

  async keysRotationDue (now: number, afterId: string, limit: number): Promise<KeyRecord[]> {
    return this.all("SELECT * FROM keys WHERE status = 'active' AND rotation_due_at IS NOT NULL AND rotation_due_at <= ? AND id > ? ORDER BY id LIMIT ?", now, afterId, limit).map(toKey)
  }

  async keysWithMonthlyLimit (afterId: string, limit: number): Promise<KeyRecord[]> {
    return this.all("SELECT * FROM keys WHERE status = 'active' AND monthly_limit IS NOT NULL AND id > ? ORDER BY id LIMIT ?", afterId, limit).map(toKey)
  }

  async purgeRevokedKeys (revokedBefore: number, limit: number): Promise<number> {
    return this.write(() => {
      const rows = this.all("SELECT id, owner_id FROM keys WHERE status = 'revoked' AND revoked_at IS NOT NULL AND revoked_at < ? LIMIT ?", revokedBefore, limit)
      for (const row of rows) {
        for (const table of ['key_versions', 'usage_hourly', 'usage_daily', 'usage_monthly']) {
          this.run(`DELETE FROM ${table} WHERE key_id = ? AND owner_id = ?`, row.id, row.owner_id)
        }
        this.run('DELETE FROM keys WHERE id = ? AND owner_id = ?', row.id, row.owner_id)
      }
      return rows.length
    })
  }

  async purgeUsageHourly (before: number, limit: number): Promise<number> {
    return this.run('DELETE FROM usage_hourly WHERE rowid IN (SELECT rowid FROM usage_hourly WHERE hour < ? LIMIT ?)', before, limit)
  }

  async purgeSessions (expiredBefore: number, limit: number): Promise<number> {
    return this.write(() => {
      const ids = this.all('SELECT id FROM sessions WHERE expires_at < ? LIMIT ?', expiredBefore, limit).map((r) => r.id)
      for (const id of ids) {
        this.run('DELETE FROM refresh_tokens WHERE session_id = ?', id)
        this.run('DELETE FROM sessions WHERE id = ?', id)
      }
      return ids.length
    })
  }

  async purgeIdempotency (before: number, limit: number): Promise<number> {
    return this.run('DELETE FROM idempotency WHERE rowid IN (SELECT rowid FROM idempotency WHERE created_at < ? LIMIT ?)', before, limit)
  }

  async purgeAudit (before: number, limit: number): Promise<number> {
    return this.write(() => {
      const rows = this.all('SELECT id, owner_id, seq, hash FROM audit_events WHERE created_at < ? ORDER BY owner_id, seq LIMIT ?', before, limit)
      const anchors = new Map<string, { seq: number, hash: string }>()
      for (const row of rows) {
        this.run('DELETE FROM audit_events WHERE id = ?', row.id)
        anchors.set(row.owner_id as string, { seq: row.seq as number, hash: row.hash as string })
      }
      for (const [owner, anchor] of anchors) {
        this.run(`INSERT INTO audit_anchors (owner_id, seq, hash) VALUES (?, ?, ?)
          ON CONFLICT (owner_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash WHERE excluded.seq > audit_anchors.seq`, owner, anchor.seq, anchor.hash)
      }
      return rows.length
    })
  }

  async auditAnchor (ownerId: string): Promise<{ seq: number, hash: string }> {
    const row = this.get('SELECT seq, hash FROM audit_anchors WHERE owner_id = ?', ownerId)
    return row === undefined ? { seq: 0, hash: GENESIS_HASH } : { seq: row.seq as number, hash: row.hash as string }
  }

  async auditSeal (ownerId: string): Promise<AuditSeal | null> {
    const row = this.get('SELECT seq, hash, mac FROM audit_seals WHERE owner_id = ?', ownerId)
    return row === undefined ? null : { seq: row.seq as number, hash: row.hash as string, mac: row.mac as string }
  }

  async rollupDaily (fromHour: number, toHour: number): Promise<number> {
    const DAY = 86_400_000
    const fromDay = fromHour - (fromHour % DAY)
    const toDay = toHour - (toHour % DAY) + DAY
    return this.write(() => this.run(`INSERT INTO usage_daily (key_id, day, owner_id, units, requests)
      SELECT key_id, hour - (hour % ${DAY}) AS day, owner_id, SUM(units), SUM(requests) FROM usage_hourly
      WHERE hour >= ? AND hour < ? GROUP BY key_id, day, owner_id
      ON CONFLICT (key_id, day) DO UPDATE SET units = excluded.units, requests = excluded.requests`, fromDay, toDay))
  }

  async usageDaily (ownerId: string, keyId: string, fromDay: number, toDay: number): Promise<UsagePoint[]> {
    return this.all('SELECT day, units, requests FROM usage_daily WHERE key_id = ? AND owner_id = ? AND day >= ? AND day < ? ORDER BY day',
      keyId, ownerId, fromDay, toDay).map((r) => ({ hour: r.day as number, units: r.units as number, requests: r.requests as number }))
  }

  async recordJobRun (run: Omit<JobRunRecord, 'id'>): Promise<JobRunRecord> {
    const record = { id: newId(run.startedAt), ...run }
    this.run('INSERT INTO job_runs (id, job, started_at, duration_ms, ok, result, error) VALUES (?, ?, ?, ?, ?, ?, ?)',
      record.id, run.job, run.startedAt, Math.round(run.durationMs), run.ok ? 1 : 0, JSON.stringify(run.result), run.error)
    // Bounded history: the last 200 runs of each job.
    this.run('DELETE FROM job_runs WHERE job = ? AND id NOT IN (SELECT id FROM job_runs WHERE job = ? ORDER BY started_at DESC LIMIT 200)', run.job, run.job)
    return record
  }

  async jobRuns (job: string, limit: number): Promise<JobRunRecord[]> {
    return this.all('SELECT * FROM job_runs WHERE job = ? ORDER BY started_at DESC, id DESC LIMIT ?', job, limit).map(toJobRun)
  }

  async saveStatsSnapshot (snapshot: StatsSnapshot): Promise<void> {
    this.run('INSERT INTO stats_snapshots (at, data) VALUES (?, ?) ON CONFLICT (at) DO UPDATE SET data = excluded.data', snapshot.at, JSON.stringify(snapshot.data))
  }

  async statsSnapshots (from: number, to: number, limit: number): Promise<StatsSnapshot[]> {
    return this.all('SELECT at, data FROM stats_snapshots WHERE at >= ? AND at < ? ORDER BY at LIMIT ?', from, to, limit)
      .map((r) => ({ at: r.at as number, data: JSON.parse(r.data as string) }))
  }

  async purgeStatsSnapshots (before: number): Promise<number> {
    return this.run('DELETE FROM stats_snapshots WHERE at < ?', before)
  }

  async systemCounts (now: number): Promise<SystemCounts> {
    const n = (sql: string, ...params: unknown[]) => (this.get(sql, ...params) as Row).n as number
    return {
      users: n('SELECT COUNT(*) AS n FROM users'),
      keys: n('SELECT COUNT(*) AS n FROM keys'),
      activeKeys: n("SELECT COUNT(*) AS n FROM keys WHERE status = 'active'"),
      sessions: n('SELECT COUNT(*) AS n FROM sessions WHERE revoked_at IS NULL AND expires_at > ?', now),
      unreadNotifications: n('SELECT COUNT(*) AS n FROM notifications WHERE read_at IS NULL'),
      pendingDeliveries: n("SELECT COUNT(*) AS n FROM deliveries WHERE status = 'pending'")
    }
  }

  async acquireLease (name: string, holder: string, ttlMs: number, now: number): Promise<boolean> {
    return this.write(() => this.run(`INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
      ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
      WHERE leases.holder = excluded.holder OR leases.expires_at <= ?`, name, holder, now + ttlMs, now) > 0)
  }

  async releaseLease (name: string, holder: string): Promise<void> {
    this.run('DELETE FROM leases WHERE name = ? AND holder = ?', name, holder)
  }

  async getVault (userId: string): Promise<VaultRecord | null> {
    const row = this.get('SELECT * FROM vaults WHERE user_id = ?', userId)
    return row === undefined ? null : toVault(row)
  }

  async saveVault (userId: string, vault: Pick<VaultRecord, 'kdf' | 'wrappedKey'>, expectedRevision: number | null, audit?: AuditInput): Promise<boolean> {
    const now = Date.now()
    return this.write(() => {
      let saved: boolean
      if (expectedRevision === null) {
        saved = this.run(`INSERT INTO vaults (user_id, kdf, wrapped_key, revision, created_at, updated_at)
          VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (user_id) DO NOTHING`, userId, vault.kdf, vault.wrappedKey, now, now) > 0
      } else {
        saved = this.run('UPDATE vaults SET kdf = ?, wrapped_key = ?, revision = revision + 1, updated_at = ? WHERE user_id = ? AND revision = ?',
          vault.kdf, vault.wrappedKey, now, userId, expectedRevision) > 0
      }
      if (saved && audit !== undefined) this.appendAuditTx(userId, audit)
      return saved
    })
  }

  async appendAudit (ownerId: string, input: AuditInput): Promise<AuditEvent> {
    return this.write(() => this.appendAuditTx(ownerId, input))
  }

  async listAudit (ownerId: string, query: AuditQuery): Promise<AuditEvent[]> {
    const where = ['owner_id = ?']
    const params: unknown[] = [ownerId]
    if (query.action !== undefined) { where.push('action = ?'); params.push(query.action) }
    if (query.keyId !== undefined) { where.push('key_id = ?'); params.push(query.keyId) }
    if (query.beforeSeq !== undefined) { where.push('seq < ?'); params.push(query.beforeSeq) }
    params.push(query.limit)
    return this.all(`SELECT * FROM audit_events WHERE ${where.join(' AND ')} ORDER BY seq DESC LIMIT ?`, ...params).map(toAudit)
  }

  async auditChain (ownerId: string, afterSeq: number, limit: number): Promise<AuditEvent[]> {
    return this.all('SELECT * FROM audit_events WHERE owner_id = ? AND seq > ? ORDER BY seq ASC LIMIT ?', ownerId, afterSeq, limit).map(toAudit)
  }

  async findKeyByHash (ownerId: string, hash: string): Promise<KeyRecord | null> {
    const row = this.get('SELECT * FROM keys WHERE hash = ? AND owner_id = ?', hash, ownerId)
    return row === undefined ? null : toKey(row)
  }

  async findCredentialByHash (hash: string): Promise<KeyRecord | null> {
    const row = this.get("SELECT * FROM keys WHERE hash = ? AND kind = 'issued'", hash)
    return row === undefined ? null : toKey(row)
  }
}
