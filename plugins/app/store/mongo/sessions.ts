import type { ClientSession, Filter } from 'mongodb'
import { newId } from '../ids.ts'
import type { AuditInput, NewSession, RefreshOutcome, SessionRecord, SessionsStore } from '../types/index.ts'
import type { AppendAudit } from './audit.ts'
import type { MongoConnection } from './connection.ts'
import type { SessionDoc } from './documents.ts'
import { toDate, toSession } from './mappers.ts'

const INVALID: RefreshOutcome = { status: 'invalid' }

export class MongoSessions implements SessionsStore {
  constructor (private readonly mongo: MongoConnection, private readonly appendAudit: AppendAudit) {}

  /** The session and its first refresh token commit together: no session is ever left that no token can refresh. */
  async createSession (session: NewSession, refreshHash: string): Promise<SessionRecord> {
    const now = Date.now()
    const record: SessionRecord = { id: newId(now), ...session, createdAt: now, lastUsedAt: now, revokedAt: null }
    await this.mongo.transaction(async (tx) => {
      await this.mongo.sessions.insertOne({
        _id: record.id,
        userId: record.userId,
        createdAt: toDate(record.createdAt),
        expiresAt: toDate(record.expiresAt),
        lastUsedAt: toDate(record.lastUsedAt),
        revokedAt: null,
        userAgent: record.userAgent,
        ip: record.ip
      }, { session: tx })
      await this.mongo.refreshTokens.insertOne({ _id: refreshHash, sessionId: record.id, userId: record.userId, createdAt: toDate(now), usedAt: null }, { session: tx })
    })
    return record
  }

  async getSession (userId: string, id: string): Promise<SessionRecord | null> {
    const doc = await this.mongo.sessions.findOne({ _id: id, userId })
    return doc === null ? null : toSession(doc)
  }

  async listSessions (userId: string): Promise<SessionRecord[]> {
    const docs = await this.mongo.sessions.find({ userId }).sort({ createdAt: -1, _id: -1 }).toArray()
    return docs.map(toSession)
  }

  /**
   * One transaction: the claim of the old token, the insert of its successor and the session's
   * lastUsedAt commit together or not at all, so a failure between them can never leave a claimed
   * token without a successor (which the next refresh would take for reuse). Two concurrent
   * exchanges of one token write the same document: one commits, the other is retried by the
   * driver and then finds the token used.
   */
  async rotateRefreshToken (oldHash: string, newHash: string, now: number): Promise<RefreshOutcome> {
    const { refreshTokens, sessions } = this.mongo
    const usedAt = toDate(now)
    return await this.mongo.transaction(async (tx): Promise<RefreshOutcome> => {
      const token = await refreshTokens.findOne({ _id: oldHash }, { session: tx })
      if (token === null) return INVALID
      if (token.usedAt !== null) {
        const session = await this.#revokeForReuse(tx, token.sessionId, now)
        return session === null ? INVALID : { status: 'reused', session }
      }
      const current = await sessions.findOne({ _id: token.sessionId }, { session: tx })
      // As in SQLite, refusing a token for a dead session leaves it unused, so presenting it again is not "reuse".
      if (current === null || current.revokedAt !== null || current.expiresAt.getTime() <= now) return INVALID
      await refreshTokens.updateOne({ _id: oldHash, usedAt: null }, { $set: { usedAt } }, { session: tx })
      await refreshTokens.insertOne({ _id: newHash, sessionId: current._id, userId: current.userId, createdAt: usedAt, usedAt: null }, { session: tx })
      const session = await sessions.findOneAndUpdate({ _id: current._id }, { $set: { lastUsedAt: usedAt } }, { returnDocument: 'after', session: tx })
      return session === null ? INVALID : { status: 'rotated', session: toSession(session) }
    })
  }

  async #revokeForReuse (tx: ClientSession, sessionId: string, now: number): Promise<SessionRecord | null> {
    const revoked = await this.mongo.sessions.findOneAndUpdate(
      { _id: sessionId, revokedAt: null }, { $set: { revokedAt: toDate(now) } }, { returnDocument: 'after', session: tx })
    if (revoked !== null) return toSession(revoked)
    const doc = await this.mongo.sessions.findOne({ _id: sessionId }, { session: tx })
    return doc === null ? null : toSession(doc)
  }

  async revokeSession (userId: string, id: string, now: number, audit?: AuditInput): Promise<boolean> {
    return await this.mongo.transaction(async (session) => {
      const result = await this.mongo.sessions.updateOne({ _id: id, userId, revokedAt: null }, { $set: { revokedAt: toDate(now) } }, { session })
      const revoked = result.modifiedCount > 0
      if (revoked && audit !== undefined) await this.appendAudit(session, userId, audit)
      return revoked
    })
  }

  async revokeSessions (userId: string, now: number, exceptId?: string, audit?: AuditInput): Promise<number> {
    const filter: Filter<SessionDoc> = { userId, revokedAt: null }
    if (exceptId !== undefined) filter._id = { $ne: exceptId }
    return await this.mongo.transaction(async (session) => {
      const result = await this.mongo.sessions.updateMany(filter, { $set: { revokedAt: toDate(now) } }, { session })
      const n = result.modifiedCount
      if (audit !== undefined) await this.appendAudit(session, userId, { ...audit, detail: { ...audit.detail, sessions: n } })
      return n
    })
  }

  async purgeSessions (expiredBefore: number, limit: number): Promise<number> {
    if (limit <= 0) return 0
    const { refreshTokens, sessions } = this.mongo
    return await this.mongo.transaction(async (session) => {
      const docs = await sessions.find({ expiresAt: { $lt: toDate(expiredBefore) } }, { projection: { _id: 1 }, session })
        .limit(limit)
        .toArray()
      if (docs.length === 0) return 0
      const ids = docs.map((doc) => doc._id)
      await refreshTokens.deleteMany({ sessionId: { $in: ids } }, { session })
      const result = await sessions.deleteMany({ _id: { $in: ids } }, { session })
      return result.deletedCount
    })
  }
}
