import { newId } from '../ids.ts'
import type { AuditInput, NewSession, RefreshOutcome, SessionRecord, SessionsStore } from '../types/index.ts'
import type { AppendAudit } from './audit.ts'
import type { SqliteConnection } from './connection.ts'
import { toSession } from './mappers.ts'

const SESSION_COLUMNS = 'id, user_id, created_at, expires_at, last_used_at, revoked_at, user_agent, ip'

export class SqliteSessions implements SessionsStore {
  constructor (private readonly db: SqliteConnection, private readonly appendAudit: AppendAudit) {}

  async createSession (session: NewSession, refreshHash: string): Promise<SessionRecord> {
    const now = Date.now()
    const record: SessionRecord = { id: newId(now), ...session, createdAt: now, lastUsedAt: now, revokedAt: null }
    this.db.write(() => {
      this.db.run(`INSERT INTO sessions (${SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        record.id, record.userId, record.createdAt, record.expiresAt, record.lastUsedAt, null, record.userAgent, record.ip)
      this.db.run('INSERT INTO refresh_tokens (hash, session_id, user_id, created_at, used_at) VALUES (?, ?, ?, ?, NULL)',
        refreshHash, record.id, record.userId, now)
    })
    return record
  }

  async getSession (userId: string, id: string): Promise<SessionRecord | null> {
    const row = this.db.get(`SELECT ${SESSION_COLUMNS} FROM sessions WHERE id = ? AND user_id = ?`, id, userId)
    return row === undefined ? null : toSession(row)
  }

  async listSessions (userId: string): Promise<SessionRecord[]> {
    return this.db.all(`SELECT ${SESSION_COLUMNS} FROM sessions WHERE user_id = ? ORDER BY created_at DESC, id DESC`, userId).map(toSession)
  }

  async rotateRefreshToken (oldHash: string, newHash: string, now: number): Promise<RefreshOutcome> {
    const db = this.db
    return db.write((): RefreshOutcome => {
      const token = db.get('SELECT session_id, user_id, used_at FROM refresh_tokens WHERE hash = ?', oldHash)
      if (token === undefined) return { status: 'invalid' }
      const row = db.get(`SELECT ${SESSION_COLUMNS} FROM sessions WHERE id = ?`, token.session_id)
      if (row === undefined) return { status: 'invalid' }
      const session = toSession(row)
      if (token.used_at !== null) {
        if (session.revokedAt === null) {
          db.run('UPDATE sessions SET revoked_at = ? WHERE id = ?', now, session.id)
          session.revokedAt = now
        }
        return { status: 'reused', session }
      }
      if (session.revokedAt !== null || session.expiresAt <= now) return { status: 'invalid' }
      db.run('UPDATE refresh_tokens SET used_at = ? WHERE hash = ?', now, oldHash)
      db.run('INSERT INTO refresh_tokens (hash, session_id, user_id, created_at, used_at) VALUES (?, ?, ?, ?, NULL)',
        newHash, session.id, session.userId, now)
      db.run('UPDATE sessions SET last_used_at = ? WHERE id = ?', now, session.id)
      session.lastUsedAt = now
      return { status: 'rotated', session }
    })
  }

  async revokeSession (userId: string, id: string, now: number, audit?: AuditInput): Promise<boolean> {
    return this.db.write(() => {
      const n = this.db.run('UPDATE sessions SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL', now, id, userId)
      if (n > 0 && audit !== undefined) this.appendAudit(userId, audit)
      return n > 0
    })
  }

  async revokeSessions (userId: string, now: number, exceptId?: string, audit?: AuditInput): Promise<number> {
    return this.db.write(() => {
      const n = this.db.run('UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL AND id != ?',
        now, userId, exceptId ?? '')
      if (audit !== undefined) this.appendAudit(userId, { ...audit, detail: { ...audit.detail, sessions: n } })
      return n
    })
  }

  async purgeSessions (expiredBefore: number, limit: number): Promise<number> {
    return this.db.write(() => {
      const ids = this.db.all('SELECT id FROM sessions WHERE expires_at < ? LIMIT ?', expiredBefore, limit).map((r) => r.id)
      for (const id of ids) {
        this.db.run('DELETE FROM refresh_tokens WHERE session_id = ?', id)
        this.db.run('DELETE FROM sessions WHERE id = ?', id)
      }
      return ids.length
    })
  }
}
