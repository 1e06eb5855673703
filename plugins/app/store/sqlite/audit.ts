import type { AuditChain } from '../audit-chain.ts'
import { newId } from '../ids.ts'
import { GENESIS_HASH } from '../shared.ts'
import type { AuditEvent, AuditInput, AuditQuery, AuditSeal, AuditStore } from '../types/index.ts'
import type { SqliteConnection } from './connection.ts'
import { toAudit } from './mappers.ts'

/** Appends to the owner's chain inside the caller's write transaction (any aggregate's). */
export type AppendAudit = (ownerId: string, input: AuditInput) => AuditEvent

export function auditAppender (db: SqliteConnection, chain: AuditChain): AppendAudit {
  return (ownerId, input) => {
    // After retention pruned every event, the chain continues from its anchor.
    const last = db.get('SELECT seq, hash FROM audit_events WHERE owner_id = ? ORDER BY seq DESC LIMIT 1', ownerId) ??
      db.get('SELECT seq, hash FROM audit_anchors WHERE owner_id = ?', ownerId)
    const event = chain.next(newId(), ownerId, last === undefined ? null : { seq: last.seq as number, hash: last.hash as string }, input, Date.now())
    db.run(`INSERT INTO audit_events (id, owner_id, seq, action, key_id, session_id, ip, detail, created_at, prev_hash,
        subject_digest, anonymised, link_version, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`,
    event.id, ownerId, event.seq, event.action, event.keyId, event.sessionId, event.ip, JSON.stringify(event.detail),
    event.createdAt, event.prevHash, event.subjectDigest, event.linkVersion, event.hash)
    return event
  }
}

export class SqliteAudit implements AuditStore {
  constructor (private readonly db: SqliteConnection, private readonly append: AppendAudit) {}

  async appendAudit (ownerId: string, input: AuditInput): Promise<AuditEvent> {
    return this.db.write(() => this.append(ownerId, input))
  }

  async listAudit (ownerId: string, query: AuditQuery): Promise<AuditEvent[]> {
    const where = ['owner_id = ?']
    const params: unknown[] = [ownerId]
    if (query.action !== undefined) { where.push('action = ?'); params.push(query.action) }
    if (query.keyId !== undefined) { where.push('key_id = ?'); params.push(query.keyId) }
    if (query.beforeSeq !== undefined) { where.push('seq < ?'); params.push(query.beforeSeq) }
    params.push(query.limit)
    return this.db.all(`SELECT * FROM audit_events WHERE ${where.join(' AND ')} ORDER BY seq DESC LIMIT ?`, ...params).map(toAudit)
  }

  async auditChain (ownerId: string, afterSeq: number, limit: number): Promise<AuditEvent[]> {
    return this.db.all('SELECT * FROM audit_events WHERE owner_id = ? AND seq > ? ORDER BY seq ASC LIMIT ?', ownerId, afterSeq, limit).map(toAudit)
  }

  async auditAnchor (ownerId: string): Promise<{ seq: number, hash: string }> {
    const row = this.db.get('SELECT seq, hash FROM audit_anchors WHERE owner_id = ?', ownerId)
    return row === undefined ? { seq: 0, hash: GENESIS_HASH } : { seq: row.seq as number, hash: row.hash as string }
  }

  async auditSeal (ownerId: string): Promise<AuditSeal | null> {
    const row = this.db.get('SELECT seq, hash, mac FROM audit_seals WHERE owner_id = ?', ownerId)
    return row === undefined ? null : { seq: row.seq as number, hash: row.hash as string, mac: row.mac as string }
  }

  async purgeAudit (before: number, limit: number): Promise<number> {
    return this.db.write(() => {
      const rows = this.db.all('SELECT id, owner_id, seq, hash FROM audit_events WHERE created_at < ? ORDER BY owner_id, seq LIMIT ?', before, limit)
      const anchors = new Map<string, { seq: number, hash: string }>()
      for (const row of rows) {
        this.db.run('DELETE FROM audit_events WHERE id = ?', row.id)
        anchors.set(row.owner_id as string, { seq: row.seq as number, hash: row.hash as string })
      }
      for (const [owner, anchor] of anchors) {
        this.db.run(`INSERT INTO audit_anchors (owner_id, seq, hash) VALUES (?, ?, ?)
          ON CONFLICT (owner_id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash WHERE excluded.seq > audit_anchors.seq`, owner, anchor.seq, anchor.hash)
      }
      return rows.length
    })
  }
}
