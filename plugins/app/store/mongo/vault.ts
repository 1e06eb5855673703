import type { AuditInput, VaultRecord, VaultStore } from '../types/index.ts'
import type { AppendAudit } from './audit.ts'
import { isDuplicateKey, type MongoConnection } from './connection.ts'
import { toVault } from './mappers.ts'

export class MongoVault implements VaultStore {
  constructor (private readonly mongo: MongoConnection, private readonly appendAudit: AppendAudit) {}

  async getVault (userId: string): Promise<VaultRecord | null> {
    const doc = await this.mongo.vaults.findOne({ _id: userId })
    return doc === null ? null : toVault(doc)
  }

  async saveVault (userId: string, vault: Pick<VaultRecord, 'kdf' | 'wrappedKey'>, expectedRevision: number | null, audit?: AuditInput): Promise<boolean> {
    const now = new Date()
    const vaults = this.mongo.vaults
    try {
      return await this.mongo.transaction(async (session) => {
        let saved: boolean
        if (expectedRevision === null) {
          // An upsert that only sets on insert: it creates the vault or, if one exists, changes nothing.
          const result = await vaults.updateOne({ _id: userId }, {
            $setOnInsert: { kdf: vault.kdf, wrappedKey: vault.wrappedKey, revision: 1, createdAt: now, updatedAt: now }
          }, { upsert: true, session })
          saved = result.upsertedCount > 0
        } else {
          const result = await vaults.updateOne({ _id: userId, revision: expectedRevision }, {
            $set: { kdf: vault.kdf, wrappedKey: vault.wrappedKey, updatedAt: now },
            $inc: { revision: 1 }
          }, { session })
          saved = result.matchedCount > 0
        }
        if (saved && audit !== undefined) await this.appendAudit(session, userId, audit)
        return saved
      })
    } catch (err) {
      // A create racing another create: the other one got there first.
      if (expectedRevision === null && isDuplicateKey(err)) return false
      throw err
    }
  }
}
