import { DuplicateError } from '../errors.ts'
import { newId } from '../ids.ts'
import { anonymousOwner, PURGE_BATCH, purgeAccount, tombstoneEmail } from '../shared.ts'
import type { AuditInput, NewUser, UserPatch, UserRecord, UsersStore } from '../types/index.ts'
import type { AppendAudit } from './audit.ts'
import { isUniqueViolation, type SqliteConnection } from './connection.ts'
import { toUser } from './mappers.ts'

/** Tables holding an account's data by owner_id, purged in this order (versions before their keys). */
const OWNED_TABLES = ['key_versions', 'keys', 'usage_hourly', 'usage_monthly', 'idempotency', 'usage_daily', 'notifications', 'webhooks', 'deliveries']

const USER_COLUMNS = 'id, email, name, role, password_hash, created_at, updated_at'

export class SqliteUsers implements UsersStore {
  constructor (private readonly db: SqliteConnection, private readonly appendAudit: AppendAudit) {}

  async createUser (user: NewUser): Promise<UserRecord> {
    const now = Date.now()
    const record: UserRecord = { id: newId(now), ...user, createdAt: now, updatedAt: now }
    try {
      this.db.run(`INSERT INTO users (${USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`,
        record.id, record.email, record.name, record.role, record.passwordHash, record.createdAt, record.updatedAt)
    } catch (err) {
      if (isUniqueViolation(err)) throw new DuplicateError('email')
      throw err
    }
    return record
  }

  async getUser (id: string): Promise<UserRecord | null> {
    const row = this.db.get(`SELECT ${USER_COLUMNS} FROM users WHERE id = ? AND deleted_at IS NULL`, id)
    return row === undefined ? null : toUser(row)
  }

  async findUserByEmail (email: string): Promise<UserRecord | null> {
    const row = this.db.get(`SELECT ${USER_COLUMNS} FROM users WHERE email = ? AND deleted_at IS NULL`, email)
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
    const changed = this.db.write(() => {
      const n = this.db.run(`UPDATE users SET ${sets.join(', ')} WHERE id = ? AND deleted_at IS NULL`, ...params)
      if (n > 0 && audit !== undefined) this.appendAudit(id, audit)
      return n
    })
    return changed === 0 ? null : this.getUser(id)
  }

  async markUserDeleted (id: string, now: number): Promise<boolean> {
    const db = this.db
    return db.write(() => {
      const marked = db.run("UPDATE users SET deleted_at = ?, email = ?, name = NULL, password_hash = '', updated_at = ? WHERE id = ? AND deleted_at IS NULL",
        now, tombstoneEmail(id), now, id)
      if (marked === 0) return false
      db.run('DELETE FROM refresh_tokens WHERE user_id = ?', id)
      db.run('DELETE FROM sessions WHERE user_id = ?', id)
      return true
    })
  }

  /** Each batch is its own short write transaction, so a purge stopped midway resumes where it stopped. */
  async purgeDeletedUser (id: string, limit: number): Promise<number> {
    const db = this.db
    return db.write(() => {
      if (db.get('SELECT 1 AS marked FROM users WHERE id = ? AND deleted_at IS NOT NULL', id) === undefined) return 0
      let removed = 0
      for (const table of OWNED_TABLES) {
        removed += db.run(`DELETE FROM ${table} WHERE rowid IN (SELECT rowid FROM ${table} WHERE owner_id = ? LIMIT ?)`, id, limit - removed)
        if (removed >= limit) return removed
      }
      removed += db.run('DELETE FROM vaults WHERE user_id = ?', id)
      // Last, with the user row: the anchor and seal follow the events to their anonymous owner, so the chain still verifies.
      const owner = anonymousOwner(id)
      db.run('UPDATE audit_anchors SET owner_id = ? WHERE owner_id = ?', owner, id)
      db.run('UPDATE audit_seals SET owner_id = ? WHERE owner_id = ?', owner, id)
      db.run("UPDATE audit_events SET owner_id = ?, session_id = NULL, ip = NULL, detail = '{}', anonymised = 1 WHERE owner_id = ?", owner, id)
      db.run('DELETE FROM users WHERE id = ?', id)
      return removed
    })
  }

  async listDeletedUsers (limit: number): Promise<string[]> {
    return this.db.all('SELECT id FROM users WHERE deleted_at IS NOT NULL ORDER BY deleted_at LIMIT ?', limit).map((r) => r.id as string)
  }

  async deleteUser (id: string): Promise<boolean> {
    if (!(await this.markUserDeleted(id, Date.now()))) return false
    await purgeAccount(this, id, PURGE_BATCH)
    return true
  }
}
