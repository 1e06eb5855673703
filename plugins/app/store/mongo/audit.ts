import type { ClientSession, Filter } from 'mongodb'
import type { AuditChain } from '../audit-chain.ts'
import { newId } from '../ids.ts'
import { GENESIS_HASH } from '../shared.ts'
import type { AuditEvent, AuditInput, AuditQuery, AuditSeal, AuditStore } from '../types/index.ts'
import { AuditConflict, isDuplicateKey, type MongoConnection } from './connection.ts'
import type { AuditDoc } from './documents.ts'
import { jsonValue, toAudit, toDate } from './mappers.ts'

/** Appends to the owner's chain inside the caller's transaction (any aggregate's). */
export type AppendAudit = (session: ClientSession, ownerId: string, input: AuditInput) => Promise<AuditEvent>

export function auditAppender (m: MongoConnection, chain: AuditChain): AppendAudit {
  return async (session, ownerId, input) => {
    // After retention pruned every event, the chain continues from its anchor.
    const last = await m.audit.find({ ownerId }, { session, projection: { seq: 1, hash: 1 } }).sort({ seq: -1 }).limit(1).next() ??
      await m.auditAnchors.findOne({ _id: ownerId }, { session })
    const event = chain.next(newId(), ownerId, last === null ? null : { seq: last.seq, hash: last.hash }, input, Date.now())
    try {
      await m.audit.insertOne({
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
}

export class MongoAudit implements AuditStore {
  constructor (private readonly mongo: MongoConnection, private readonly append: AppendAudit) {}

  async appendAudit (ownerId: string, input: AuditInput): Promise<AuditEvent> {
    return await this.mongo.transaction((session) => this.append(session, ownerId, input))
  }

  async listAudit (ownerId: string, query: AuditQuery): Promise<AuditEvent[]> {
    // limit(0) means "no limit" to MongoDB; SQLite's LIMIT 0 returns nothing.
    if (query.limit <= 0) return []
    const filter: Filter<AuditDoc> = { ownerId }
    if (query.action !== undefined) filter.action = query.action
    if (query.keyId !== undefined) filter.keyId = query.keyId
    if (query.beforeSeq !== undefined) filter.seq = { $lt: query.beforeSeq }
    const docs = await this.mongo.audit.find(filter).sort({ seq: -1 }).limit(query.limit).toArray()
    return docs.map(toAudit)
  }

  async auditChain (ownerId: string, afterSeq: number, limit: number): Promise<AuditEvent[]> {
    if (limit <= 0) return []
    const docs = await this.mongo.audit.find({ ownerId, seq: { $gt: afterSeq } }).sort({ seq: 1 }).limit(limit).toArray()
    return docs.map(toAudit)
  }

  async auditAnchor (ownerId: string): Promise<{ seq: number, hash: string }> {
    const doc = await this.mongo.auditAnchors.findOne({ _id: ownerId })
    return doc === null ? { seq: 0, hash: GENESIS_HASH } : { seq: doc.seq, hash: doc.hash }
  }

  async auditSeal (ownerId: string): Promise<AuditSeal | null> {
    const doc = await this.mongo.auditSeals.findOne({ _id: ownerId })
    return doc === null ? null : { seq: doc.seq, hash: doc.hash, mac: doc.mac }
  }

  async purgeAudit (before: number, limit: number): Promise<number> {
    if (limit <= 0) return 0
    const { audit, auditAnchors } = this.mongo
    // Read in the transaction: an account deleted meanwhile (its events moved to the anonymous owner) makes the
    // deletion conflict and run again, so the anchor always names the events' current owner.
    return await this.mongo.transaction(async (session) => {
      const docs = await audit.find({ createdAt: { $lt: toDate(before) } }, { projection: { ownerId: 1, seq: 1, hash: 1 }, session })
        .sort({ ownerId: 1, seq: 1 })
        // The planner could pick the createdAt index and sort in memory; this one serves the sort and checks the range in the index.
        .hint({ ownerId: 1, seq: 1, createdAt: 1 })
        .limit(limit)
        .toArray()
      if (docs.length === 0) return 0
      const anchors = new Map<string, { seq: number, hash: string }>()
      for (const doc of docs) anchors.set(doc.ownerId, { seq: doc.seq, hash: doc.hash })
      await audit.deleteMany({ _id: { $in: docs.map((doc) => doc._id) } }, { session })
      for (const [ownerId, anchor] of anchors) {
        // Only ever forward: both fields are computed from the stored seq (a missing one counts as 0).
        const higher = { $gt: [anchor.seq, { $ifNull: ['$seq', 0] }] }
        await auditAnchors.updateOne({ _id: ownerId }, [{
          $set: {
            seq: { $cond: [higher, anchor.seq, '$seq'] },
            hash: { $cond: [higher, { $literal: anchor.hash }, '$hash'] }
          }
        }], { upsert: true, session })
      }
      return docs.length
    })
  }
}
