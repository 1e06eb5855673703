import { DuplicateError, KeyRevokedError } from '../errors.ts'
import { keyPage, searchText } from '../shared.ts'
import type {
  AuditInput, KeyListQuery, KeyPatch, KeyRecord, KeysStore, KeyStats, KeyVersionRecord, NewKey, NewKeyVersion, Page, RotationPlan
} from '../types/index.ts'
import type { AppendAudit } from './audit.ts'
import { isUniqueViolation, type Row, type SqliteConnection } from './connection.ts'
import { toKey, toVersion } from './mappers.ts'

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

function escapeLike (text: string): string {
  return text.replace(/[\\%_]/g, (c) => '\\' + c)
}

/** The WHERE clause and its parameters for one page of an owner's keys. */
function listFilter (ownerId: string, query: KeyListQuery): { where: string[], params: unknown[] } {
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
  if (query.after !== undefined) {
    const column = SORT_COLUMNS[query.sort]
    const op = query.descending ? '<' : '>'
    const value = query.after.value ?? -1
    where.push(`(${column} ${op} ? OR (${column} = ? AND id ${op} ?))`)
    params.push(value, value, query.after.id)
  }
  return { where, params }
}

export class SqliteKeys implements KeysStore {
  constructor (private readonly db: SqliteConnection, private readonly appendAudit: AppendAudit) {}

  async createKey (ownerId: string, key: NewKey, first?: NewKeyVersion, audit?: AuditInput): Promise<KeyRecord> {
    const now = key.createdAt ?? Date.now()
    const record: KeyRecord = { ...key, ownerId, createdAt: now, updatedAt: now, lastUsedAt: null, revokedAt: null }
    try {
      this.db.write(() => {
        this.db.run(`INSERT INTO keys (id, owner_id, kind, name, service, description, environment, tags, scopes, metadata,
            prefix, start, hash, version, status, recoverable, expires_at, rotation_interval_days, rotation_due_at,
            monthly_limit, rate_limit, created_at, updated_at, last_used_at, revoked_at, search)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        record.id, ownerId, record.kind, record.name, record.service, record.description, record.environment,
        JSON.stringify(record.tags), JSON.stringify(record.scopes), JSON.stringify(record.metadata), record.prefix,
        record.start, record.hash, record.version, record.status, record.recoverable ? 1 : 0, record.expiresAt,
        record.rotationIntervalDays, record.rotationDueAt, record.monthlyLimit,
        record.rateLimit === null ? null : JSON.stringify(record.rateLimit), record.createdAt, record.updatedAt, null, null,
        searchText(record))
        if (first !== undefined) this.#insertVersion(ownerId, record.id, record.version, first, now)
        if (audit !== undefined) this.appendAudit(ownerId, { ...audit, keyId: record.id })
      })
    } catch (err) {
      if (isUniqueViolation(err)) throw new DuplicateError('key')
      throw err
    }
    return record
  }

  #insertVersion (ownerId: string, keyId: string, version: number, v: NewKeyVersion, now: number) {
    this.db.run(`INSERT INTO key_versions (key_id, owner_id, version, hash, start, ciphertext, created_at, retired_at, grace_ends_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)`, keyId, ownerId, version, v.hash, v.start, v.ciphertext, now)
  }

  async getKey (ownerId: string, id: string): Promise<KeyRecord | null> {
    const row = this.db.get('SELECT * FROM keys WHERE id = ? AND owner_id = ?', id, ownerId)
    return row === undefined ? null : toKey(row)
  }

  async listKeys (ownerId: string, query: KeyListQuery): Promise<Page<KeyRecord>> {
    const { where, params } = listFilter(ownerId, query)
    const column = SORT_COLUMNS[query.sort]
    const direction = query.descending ? 'DESC' : 'ASC'
    params.push(query.limit + 1)
    const rows = this.db.all(`SELECT * FROM keys WHERE ${where.join(' AND ')} ORDER BY ${column} ${direction}, id ${direction} LIMIT ?`, ...params)
    return keyPage(rows.map(toKey), query)
  }

  async updateKey (ownerId: string, id: string, patch: KeyPatch, audit?: AuditInput): Promise<KeyRecord | null> {
    return this.db.write(() => this.#applyKeyPatch(ownerId, id, patch, audit))
  }

  /** Applies a patch inside the caller's transaction. */
  #applyKeyPatch (ownerId: string, id: string, patch: KeyPatch, audit?: AuditInput): KeyRecord | null {
    const current = this.db.get('SELECT * FROM keys WHERE id = ? AND owner_id = ?', id, ownerId)
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
      this.db.run(`UPDATE keys SET ${sets.join(', ')} WHERE id = ? AND owner_id = ?`, ...params)
    } catch (err) {
      if (isUniqueViolation(err)) throw new DuplicateError('key')
      throw err
    }
    if (audit !== undefined) this.appendAudit(ownerId, { ...audit, keyId: id })
    return { ...merged, updatedAt }
  }

  async rotateKey (ownerId: string, id: string, plan: RotationPlan, audit?: AuditInput): Promise<KeyRecord | null> {
    return this.db.write(() => {
      const current = this.db.get('SELECT version FROM keys WHERE id = ? AND owner_id = ?', id, ownerId)
      if (current === undefined) return null
      this.db.run('UPDATE key_versions SET retired_at = ?, grace_ends_at = ? WHERE key_id = ? AND owner_id = ? AND version = ?',
        plan.now, plan.graceEndsAt, id, ownerId, current.version)
      this.#insertVersion(ownerId, id, plan.patch.version, plan.next, plan.now)
      this.db.run('DELETE FROM key_versions WHERE key_id = ? AND owner_id = ? AND version <= ?', id, ownerId, plan.patch.version - plan.keepPrevious - 1)
      return this.#applyKeyPatch(ownerId, id, plan.patch, audit)
    })
  }

  async deleteKey (ownerId: string, id: string): Promise<boolean> {
    return this.db.write(() => {
      this.db.run('DELETE FROM key_versions WHERE key_id = ? AND owner_id = ?', id, ownerId)
      this.db.run('DELETE FROM usage_hourly WHERE key_id = ? AND owner_id = ?', id, ownerId)
      this.db.run('DELETE FROM usage_monthly WHERE key_id = ? AND owner_id = ?', id, ownerId)
      this.db.run('DELETE FROM usage_daily WHERE key_id = ? AND owner_id = ?', id, ownerId)
      return this.db.run('DELETE FROM keys WHERE id = ? AND owner_id = ?', id, ownerId) > 0
    })
  }

  async listKeyVersions (ownerId: string, keyId: string): Promise<KeyVersionRecord[]> {
    return this.db.all('SELECT * FROM key_versions WHERE key_id = ? AND owner_id = ? ORDER BY version DESC', keyId, ownerId).map(toVersion)
  }

  async getKeyVersion (ownerId: string, keyId: string, version: number): Promise<KeyVersionRecord | null> {
    const row = this.db.get('SELECT * FROM key_versions WHERE key_id = ? AND owner_id = ? AND version = ?', keyId, ownerId, version)
    return row === undefined ? null : toVersion(row)
  }

  async findKeyByHash (ownerId: string, hash: string): Promise<KeyRecord | null> {
    const row = this.db.get('SELECT * FROM keys WHERE hash = ? AND owner_id = ?', hash, ownerId)
    return row === undefined ? null : toKey(row)
  }

  async findVersionByHash (ownerId: string, hash: string): Promise<{ key: KeyRecord, version: KeyVersionRecord } | null> {
    const version = this.db.get('SELECT * FROM key_versions WHERE hash = ? AND owner_id = ?', hash, ownerId)
    if (version === undefined) return null
    const key = this.db.get('SELECT * FROM keys WHERE id = ? AND owner_id = ?', version.key_id, ownerId)
    return key === undefined ? null : { key: toKey(key), version: toVersion(version) }
  }

  async findCredentialByHash (hash: string): Promise<KeyRecord | null> {
    // A key of an account marked deleted no longer resolves, though its rows wait for the purge.
    const row = this.db.get(`SELECT keys.* FROM keys JOIN users ON users.id = keys.owner_id
      WHERE keys.hash = ? AND keys.kind = 'issued' AND users.deleted_at IS NULL`, hash)
    return row === undefined ? null : toKey(row)
  }

  async keyStats (ownerId: string, now: number): Promise<KeyStats> {
    const group = (column: string) => Object.fromEntries(
      this.db.all(`SELECT ${column} AS k, COUNT(*) AS n FROM keys WHERE owner_id = ? GROUP BY ${column}`, ownerId)
        .map((r) => [r.k === null ? 'none' : String(r.k), r.n as number]))
    const counts = this.db.get(`SELECT COUNT(*) AS total,
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

  async expireKeys (now: number, limit: number): Promise<KeyRecord[]> {
    return this.db.write(() => {
      const rows = this.db.all("SELECT * FROM keys WHERE status = 'active' AND expires_at IS NOT NULL AND expires_at <= ? ORDER BY id LIMIT ?", now, limit)
      const changed: KeyRecord[] = []
      for (const row of rows) {
        const key = this.#applyKeyPatch(row.owner_id as string, row.id as string, { status: 'expired' }, { action: 'key.expired', detail: { expiresAt: row.expires_at } })
        if (key !== null) changed.push(key)
      }
      return changed
    })
  }

  async keysExpiringBetween (from: number, to: number, afterId: string, limit: number): Promise<KeyRecord[]> {
    return this.db.all("SELECT * FROM keys WHERE status = 'active' AND expires_at > ? AND expires_at <= ? AND id > ? ORDER BY id LIMIT ?", from, to, afterId, limit).map(toKey)
  }

  async keysRotationDue (now: number, afterId: string, limit: number): Promise<KeyRecord[]> {
    return this.db.all("SELECT * FROM keys WHERE status = 'active' AND rotation_due_at IS NOT NULL AND rotation_due_at <= ? AND id > ? ORDER BY id LIMIT ?", now, afterId, limit).map(toKey)
  }

  async keysWithMonthlyLimit (afterId: string, limit: number): Promise<KeyRecord[]> {
    return this.db.all("SELECT * FROM keys WHERE status = 'active' AND monthly_limit IS NOT NULL AND id > ? ORDER BY id LIMIT ?", afterId, limit).map(toKey)
  }

  async purgeRevokedKeys (revokedBefore: number, limit: number): Promise<number> {
    return this.db.write(() => {
      const rows = this.db.all("SELECT id, owner_id FROM keys WHERE status = 'revoked' AND revoked_at IS NOT NULL AND revoked_at < ? LIMIT ?", revokedBefore, limit)
      for (const row of rows) {
        for (const table of ['key_versions', 'usage_hourly', 'usage_daily', 'usage_monthly']) {
          this.db.run(`DELETE FROM ${table} WHERE key_id = ? AND owner_id = ?`, row.id, row.owner_id)
        }
        this.db.run('DELETE FROM keys WHERE id = ? AND owner_id = ?', row.id, row.owner_id)
      }
      return rows.length
    })
  }
}
