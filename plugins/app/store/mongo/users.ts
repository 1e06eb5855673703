import { DuplicateError } from '../errors.ts'
import { newId } from '../ids.ts'
import { anonymousOwner } from '../shared.ts'
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
    const doc = await this.mongo.users.findOne({ _id: id })
    return doc === null ? null : toUser(doc)
  }

  async findUserByEmail (email: string): Promise<UserRecord | null> {
    const doc = await this.mongo.users.findOne({ email })
    return doc === null ? null : toUser(doc)
  }

  async updateUser (id: string, patch: UserPatch, audit?: AuditInput): Promise<UserRecord | null> {
    const set: Partial<UserDoc> = { updatedAt: new Date() }
    if (patch.name !== undefined) set.name = patch.name
    if (patch.role !== undefined) set.role = patch.role
    if (patch.passwordHash !== undefined) set.passwordHash = patch.passwordHash
    return await this.mongo.transaction(async (session) => {
      const doc = await this.mongo.users.findOneAndUpdate({ _id: id }, { $set: set }, { returnDocument: 'after', session })
      if (doc === null) return null
      if (audit !== undefined) await this.appendAudit(session, id, audit)
      return toUser(doc)
    })
  }

  /** The account-deletion cascade: every collection holding the user's data, in one transaction. */
  async deleteUser (id: string): Promise<boolean> {
    const owner = anonymousOwner(id)
    const m = this.mongo
    return await m.transaction(async (session) => {
      await m.keyVersions.deleteMany({ ownerId: id }, { session })
      await m.keys.deleteMany({ ownerId: id }, { session })
      await m.usageHourly.deleteMany({ ownerId: id }, { session })
      await m.usageMonthly.deleteMany({ ownerId: id }, { session })
      await m.idempotency.deleteMany({ ownerId: id }, { session })
      await m.dailyUsage.deleteMany({ ownerId: id }, { session })
      await m.notifications.deleteMany({ ownerId: id }, { session })
      await m.webhooks.deleteOne({ _id: id }, { session })
      await m.deliveries.deleteMany({ ownerId: id }, { session })
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
      await m.vaults.deleteOne({ _id: id }, { session })
      await m.refreshTokens.deleteMany({ userId: id }, { session })
      await m.sessions.deleteMany({ userId: id }, { session })
      // The events stay, chained, with the personal fields blanked; their digest still covers them.
      await m.audit.updateMany({ ownerId: id },
        { $set: { ownerId: owner, sessionId: null, ip: null, detail: {}, anonymised: true } }, { session })
      const result = await m.users.deleteOne({ _id: id }, { session })
      return result.deletedCount > 0
    })
  }
}
