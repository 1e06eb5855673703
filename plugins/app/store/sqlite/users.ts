import { DuplicateError } from '../errors.ts'
import { newId } from '../ids.ts'
import { anonymousOwner } from '../shared.ts'
import type { AuditInput, NewUser, UserPatch, UserRecord, UsersStore } from '../types/index.ts'
import type { AppendAudit } from './audit.ts'
import { isUniqueViolation, type SqliteConnection } from './connection.ts'
import { toUser } from './mappers.ts'

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
    const row = this.db.get(`SELECT ${USER_COLUMNS} FROM users WHERE id = ?`, id)
    return row === undefined ? null : toUser(row)
  }

  async findUserByEmail (email: string): Promise<UserRecord | null> {
    const row = this.db.get(`SELECT ${USER_COLUMNS} FROM users WHERE email = ?`, email)
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
      const n = this.db.run(`UPDATE users SET ${sets.join(', ')} WHERE id = ?`, ...params)
      if (n > 0 && audit !== undefined) this.appendAudit(id, audit)
      return n
    })
    return changed === 0 ? null : this.getUser(id)
  }

  /** The account-deletion cascade: every table holding the user's data, in one transaction. */
  async deleteUser (id: string): Promise<boolean> {
    const db = this.db
    return db.write(() => {
      db.run('DELETE FROM key_versions WHERE owner_id = ?', id)
      db.run('DELETE FROM keys WHERE owner_id = ?', id)
      db.run('DELETE FROM usage_hourly WHERE owner_id = ?', id)
      db.run('DELETE FROM usage_monthly WHERE owner_id = ?', id)
      db.run('DELETE FROM idempotency WHERE owner_id = ?', id)
      db.run('DELETE FROM usage_daily WHERE owner_id = ?', id)
      db.run('DELETE FROM notifications WHERE owner_id = ?', id)
      db.run('DELETE FROM webhooks WHERE owner_id = ?', id)
      db.run('DELETE FROM deliveries WHERE owner_id = ?', id)
      db.run('UPDATE audit_anchors SET owner_id = ? WHERE owner_id = ?', anonymousOwner(id), id)
      db.run('UPDATE audit_seals SET owner_id = ? WHERE owner_id = ?', anonymousOwner(id), id)
      db.run('DELETE FROM vaults WHERE user_id = ?', id)
      db.run('DELETE FROM refresh_tokens WHERE user_id = ?', id)
      db.run('DELETE FROM sessions WHERE user_id = ?', id)
      db.run("UPDATE audit_events SET owner_id = ?, session_id = NULL, ip = NULL, detail = '{}', anonymised = 1 WHERE owner_id = ?",
        anonymousOwner(id), id)
      return db.run('DELETE FROM users WHERE id = ?', id) > 0
    })
  }
}
