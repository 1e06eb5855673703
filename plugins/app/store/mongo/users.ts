import type { Collection, Document } from 'mongodb'
import { DuplicateError } from '../errors.ts'
import { newId } from '../ids.ts'
import { anonymousOwner, PURGE_BATCH, purgeAccount, tombstoneEmail } from '../shared.ts'
import type { AuditInput, NewUser, UserPatch, UserRecord, UsersStore } from '../types/index.ts'
import type { AppendAudit } from './audit.ts'
import { isDuplicateKey, type MongoConnection } from './connection.ts'
import type { UserDoc } from './documents.ts'
import { toDate, toUser } from './mappers.ts'

export class MongoUsers implements UsersStore {
  constructor (private readonly mongo: MongoConnection, private readonly appendAudit: AppendAudit) {}

  async createUser (user: NewUser): Promise<UserRecord> {
    const now = Date.now()
    const record: UserRecord = { id: newId(now), ...user, createdAt: now, updatedAt: now }
    try {
      await this.mongo.users.insertOne({
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
    const doc = await this.mongo.users.findOne({ _id: id, deletedAt: null })
    return doc === null ? null : toUser(doc)
  }

  async findUserByEmail (email: string): Promise<UserRecord | null> {
    const doc = await this.mongo.users.findOne({ email, deletedAt: null })
    return doc === null ? null : toUser(doc)
  }

  async updateUser (id: string, patch: UserPatch, audit?: AuditInput): Promise<UserRecord | null> {
    const set: Partial<UserDoc> = { updatedAt: new Date() }
    if (patch.name !== undefined) set.name = patch.name
    if (patch.role !== undefined) set.role = patch.role
    if (patch.passwordHash !== undefined) set.passwordHash = patch.passwordHash
    return await this.mongo.transaction(async (session) => {
      const doc = await this.mongo.users.findOneAndUpdate({ _id: id, deletedAt: null }, { $set: set }, { returnDocument: 'after', session })
      if (doc === null) return null
      if (audit !== undefined) await this.appendAudit(session, id, audit)
      return toUser(doc)
    })
  }

  async markUserDeleted (id: string, now: number): Promise<boolean> {
    const m = this.mongo
    return await m.transaction(async (session) => {
      const marked = await m.users.updateOne({ _id: id, deletedAt: null },
        { $set: { deletedAt: toDate(now), email: tombstoneEmail(id), name: null, passwordHash: '', updatedAt: toDate(now) } }, { session })
      if (marked.modifiedCount === 0) return false
      await m.refreshTokens.deleteMany({ userId: id }, { session })
      await m.sessions.deleteMany({ userId: id }, { session })
      return true
    })
  }

  /** Batches outside any transaction (the 60 s limit no longer bounds an account's size); each delete is by _id, so a stopped purge resumes. */
  async purgeDeletedUser (id: string, limit: number): Promise<number> {
    const m = this.mongo
    if (await m.users.findOne({ _id: id, deletedAt: { $type: 'date' } }, { projection: { _id: 1 } }) === null) return 0
    let removed = 0
    for (const collection of this.#owned()) {
      const ids = (await collection.find({ ownerId: id }, { projection: { _id: 1 }, limit: limit - removed }).toArray()).map((doc) => doc._id)
      if (ids.length > 0) removed += (await collection.deleteMany({ _id: { $in: ids } })).deletedCount
      if (removed >= limit) return removed
    }
    removed += (await m.webhooks.deleteOne({ _id: id })).deletedCount + (await m.vaults.deleteOne({ _id: id })).deletedCount
    await this.#finishPurge(id)
    return removed
  }

  /** Collections holding an account's data by ownerId, purged in this order (versions before their keys). */
  #owned (): Array<Collection<Document>> {
    const m = this.mongo
    return [m.keyVersions, m.keys, m.usageHourly, m.usageMonthly, m.idempotency, m.dailyUsage, m.notifications, m.deliveries] as unknown as Array<Collection<Document>>
  }

  /** The audit move and the user document, in one transaction: the chain verifies before and after. */
  async #finishPurge (id: string): Promise<void> {
    const owner = anonymousOwner(id)
    const m = this.mongo
    await m.transaction(async (session) => {
      // The anchor follows the events to their anonymous owner, so a pruned chain still verifies.
      const anchor = await m.auditAnchors.findOneAndDelete({ _id: id }, { session })
      if (anchor !== null) {
        await m.auditAnchors.replaceOne({ _id: owner }, { seq: anchor.seq, hash: anchor.hash }, { upsert: true, session })
      }
      // So does the seal of its v1 events: the seal's MAC names the anonymous owner, which does not change.
      const seal = await m.auditSeals.findOneAndDelete({ _id: id }, { session })
      if (seal !== null) {
        await m.auditSeals.replaceOne({ _id: owner }, { seq: seal.seq, hash: seal.hash, mac: seal.mac }, { upsert: true, session })
      }
      // The events stay, chained, with the personal fields blanked; their digest still covers them.
      await m.audit.updateMany({ ownerId: id },
        { $set: { ownerId: owner, sessionId: null, ip: null, detail: {}, anonymised: true } }, { session })
      await m.users.deleteOne({ _id: id }, { session })
    })
  }

  async listDeletedUsers (limit: number): Promise<string[]> {
    const docs = await this.mongo.users.find({ deletedAt: { $type: 'date' } }, { projection: { _id: 1 } }).sort({ deletedAt: 1 }).limit(limit).toArray()
    return docs.map((doc) => doc._id)
  }

  async deleteUser (id: string): Promise<boolean> {
    if (!(await this.markUserDeleted(id, Date.now()))) return false
    await purgeAccount(this, id, PURGE_BATCH)
    return true
  }
}
