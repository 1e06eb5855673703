import type { ClientSession, Filter } from 'mongodb'
import { DuplicateError, KeyRevokedError } from '../errors.ts'
import { keyPage, searchText } from '../shared.ts'
import type {
  AuditInput, KeyListQuery, KeyPatch, KeyRecord, KeysStore, KeyStats, KeyVersionRecord, NewKey, NewKeyVersion, Page, RotationPlan
} from '../types/index.ts'
import type { AppendAudit } from './audit.ts'
import { isDuplicateKey, type MongoConnection } from './connection.ts'
import type { KeyDoc } from './documents.ts'
import { KEY_PATCH_FIELDS, KEY_READ, keyStatsPipeline, listFilter, SEARCH_FIELDS, storedKeyValue, toKeyStats, type StatsFacets } from './key-queries.ts'
import { fromDateOrNull, toDate, toDateOrNull, toKey, toKeyDoc, toVersion } from './mappers.ts'

/** A duplicate lookup hash is a DuplicateError, as in SQLite. */
async function refusingDuplicates<T> (write: Promise<T>): Promise<T> {
  try {
    return await write
  } catch (err) {
    if (isDuplicateKey(err)) throw new DuplicateError('key')
    throw err
  }
}

/** The system-wide scans walk one status by id: named, so the planner never picks a time index and sorts in memory. */
const BY_STATUS_AND_ID = { status: 1, _id: 1 }

export class MongoKeys implements KeysStore {
  constructor (private readonly mongo: MongoConnection, private readonly appendAudit: AppendAudit) {}

  async createKey (ownerId: string, key: NewKey, first?: NewKeyVersion, audit?: AuditInput): Promise<KeyRecord> {
    const now = key.createdAt ?? Date.now()
    const record: KeyRecord = { ...key, ownerId, createdAt: now, updatedAt: now, lastUsedAt: null, revokedAt: null }
    const doc = toKeyDoc(record)
    await refusingDuplicates(this.mongo.transaction(async (session) => {
      await this.mongo.keys.insertOne(doc, { session })
      if (first !== undefined) await this.#insertVersion(session, ownerId, record.id, record.version, first, now)
      if (audit !== undefined) await this.appendAudit(session, ownerId, { ...audit, keyId: record.id })
    }))
    return record
  }

  async #insertVersion (session: ClientSession, ownerId: string, keyId: string, version: number, v: NewKeyVersion, now: number) {
    await this.mongo.keyVersions.insertOne({
      _id: `${keyId}:${version}`,
      keyId,
      ownerId,
      version,
      hash: v.hash,
      start: v.start,
      ciphertext: v.ciphertext,
      createdAt: toDate(now),
      retiredAt: null,
      graceEndsAt: null
    }, { session })
  }

  async getKey (ownerId: string, id: string): Promise<KeyRecord | null> {
    const doc = await this.mongo.keys.findOne({ _id: id, ownerId }, KEY_READ)
    return doc === null ? null : toKey(doc)
  }

  async listKeys (ownerId: string, query: KeyListQuery): Promise<Page<KeyRecord>> {
    const direction = query.descending ? -1 : 1
    const docs = await this.mongo.keysForList
      .find(listFilter(ownerId, query), KEY_READ)
      .sort({ [query.sort]: direction, _id: direction })
      .limit(query.limit + 1)
      .toArray()
    return keyPage(docs.map(toKey), query)
  }

  async updateKey (ownerId: string, id: string, patch: KeyPatch, audit?: AuditInput): Promise<KeyRecord | null> {
    return await refusingDuplicates(this.mongo.transaction((session) => this.#applyKeyPatch(session, ownerId, id, patch, audit)))
  }

  /** Applies a patch inside the caller's transaction; null when the owner has no such key. */
  async #applyKeyPatch (session: ClientSession, ownerId: string, id: string, patch: KeyPatch, audit?: AuditInput): Promise<KeyRecord | null> {
    const keys = this.mongo.keys
    // Revocation is final: checked inside the transaction, so a racing change cannot undo it.
    const state = await keys.findOne({ _id: id, ownerId }, { projection: { status: 1 }, session })
    if (state === null) return null
    if (state.status === 'revoked' && patch.status !== 'revoked') throw new KeyRevokedError()
    const set: Record<string, unknown> = {}
    for (const field of KEY_PATCH_FIELDS) {
      if (patch[field] !== undefined) set[field] = storedKeyValue(field, patch[field])
    }
    set.updatedAt = new Date()
    if (SEARCH_FIELDS.some((field) => patch[field] !== undefined)) {
      // Read in the same transaction: a concurrent change to this key makes one of the two writes conflict and retry.
      const current = await keys.findOne({ _id: id, ownerId },
        { projection: { name: 1, service: 1, description: 1, tags: 1 }, session })
      if (current === null) return null
      set.search = searchText({
        name: patch.name ?? current.name,
        service: patch.service !== undefined ? patch.service : current.service,
        description: patch.description !== undefined ? patch.description : current.description,
        tags: patch.tags ?? current.tags
      })
    }
    const doc = await keys.findOneAndUpdate({ _id: id, ownerId }, { $set: set }, { ...KEY_READ, returnDocument: 'after', session })
    if (doc === null) return null
    if (audit !== undefined) await this.appendAudit(session, ownerId, { ...audit, keyId: id })
    return toKey(doc)
  }

  async rotateKey (ownerId: string, id: string, plan: RotationPlan, audit?: AuditInput): Promise<KeyRecord | null> {
    const { keys, keyVersions } = this.mongo
    return await refusingDuplicates(this.mongo.transaction(async (session) => {
      const current = await keys.findOne({ _id: id, ownerId }, { projection: { version: 1 }, session })
      if (current === null) return null
      await keyVersions.updateOne({ keyId: id, ownerId, version: current.version },
        { $set: { retiredAt: toDate(plan.now), graceEndsAt: toDateOrNull(plan.graceEndsAt) } }, { session })
      await this.#insertVersion(session, ownerId, id, plan.patch.version, plan.next, plan.now)
      await keyVersions.deleteMany({ keyId: id, ownerId, version: { $lte: plan.patch.version - plan.keepPrevious - 1 } }, { session })
      return await this.#applyKeyPatch(session, ownerId, id, plan.patch, audit)
    }))
  }

  async deleteKey (ownerId: string, id: string): Promise<boolean> {
    return await this.mongo.transaction(async (session) => {
      await this.#deleteKeyData(session, ownerId, id)
      const result = await this.mongo.keys.deleteOne({ _id: id, ownerId }, { session })
      return result.deletedCount > 0
    })
  }

  /** Deletes what hangs off a key (its versions and usage) inside the caller's transaction. */
  async #deleteKeyData (session: ClientSession, ownerId: string, keyId: string): Promise<void> {
    await this.mongo.keyVersions.deleteMany({ keyId, ownerId }, { session })
    await this.mongo.usageHourly.deleteMany({ keyId, ownerId }, { session })
    await this.mongo.dailyUsage.deleteMany({ keyId, ownerId }, { session })
    await this.mongo.usageMonthly.deleteMany({ keyId, ownerId }, { session })
  }

  async listKeyVersions (ownerId: string, keyId: string): Promise<KeyVersionRecord[]> {
    const docs = await this.mongo.keyVersions.find({ ownerId, keyId }).sort({ version: -1 }).toArray()
    return docs.map(toVersion)
  }

  async getKeyVersion (ownerId: string, keyId: string, version: number): Promise<KeyVersionRecord | null> {
    const doc = await this.mongo.keyVersions.findOne({ ownerId, keyId, version })
    return doc === null ? null : toVersion(doc)
  }

  async findKeyByHash (ownerId: string, hash: string): Promise<KeyRecord | null> {
    // The $type clause repeats the partial index's filter, which the planner needs before it will use that index.
    const doc = await this.mongo.keys.findOne({ hash: { $eq: hash, $type: 'string' }, ownerId }, KEY_READ)
    return doc === null ? null : toKey(doc)
  }

  async findVersionByHash (ownerId: string, hash: string): Promise<{ key: KeyRecord, version: KeyVersionRecord } | null> {
    const version = await this.mongo.keyVersions.findOne({ hash: { $eq: hash, $type: 'string' }, ownerId })
    if (version === null) return null
    const key = await this.mongo.keys.findOne({ _id: version.keyId, ownerId }, KEY_READ)
    return key === null ? null : { key: toKey(key), version: toVersion(version) }
  }

  async findCredentialByHash (hash: string): Promise<KeyRecord | null> {
    const doc = await this.mongo.keys.findOne({ hash: { $eq: hash, $type: 'string' }, kind: 'issued' }, KEY_READ)
    if (doc === null) return null
    // A key of an account marked deleted no longer resolves, though its documents wait for the purge.
    const owner = await this.mongo.users.findOne({ _id: doc.ownerId, deletedAt: null }, { projection: { _id: 1 } })
    return owner === null ? null : toKey(doc)
  }

  async keyStats (ownerId: string, now: number): Promise<KeyStats> {
    const [facets] = await this.mongo.keys.aggregate<StatsFacets>(keyStatsPipeline(ownerId, now), this.mongo.staleRead).toArray()
    return toKeyStats(facets)
  }

  async expireKeys (now: number, limit: number): Promise<KeyRecord[]> {
    if (limit <= 0) return []
    const nowDate = toDate(now)
    const due = await this.mongo.keys.find({ status: 'active', expiresAt: { $lte: nowDate } }, { projection: { ownerId: 1 } })
      .sort({ _id: 1 })
      .hint(BY_STATUS_AND_ID)
      .limit(limit)
      .toArray()
    const changed: KeyRecord[] = []
    for (const { _id: id, ownerId } of due) {
      const key = await this.mongo.transaction(async (session) => {
        // Checked again in the transaction: a key changed since the scan (revoked, given a later expiry) is left alone.
        const current = await this.mongo.keys.findOne({ _id: id, ownerId, status: 'active', expiresAt: { $lte: nowDate } },
          { projection: { expiresAt: 1 }, session })
        if (current === null) return null
        return await this.#applyKeyPatch(session, ownerId, id, { status: 'expired' },
          { action: 'key.expired', detail: { expiresAt: fromDateOrNull(current.expiresAt) } })
      })
      if (key !== null) changed.push(key)
    }
    return changed
  }

  async keysExpiringBetween (from: number, to: number, afterId: string, limit: number): Promise<KeyRecord[]> {
    return await this.#maintenanceScan({ status: 'active', expiresAt: { $gt: toDate(from), $lte: toDate(to) } }, afterId, limit)
  }

  async keysRotationDue (now: number, afterId: string, limit: number): Promise<KeyRecord[]> {
    return await this.#maintenanceScan({ status: 'active', rotationDueAt: { $lte: toDate(now) } }, afterId, limit)
  }

  async keysWithMonthlyLimit (afterId: string, limit: number): Promise<KeyRecord[]> {
    return await this.#maintenanceScan({ status: 'active', monthlyLimit: { $ne: null } }, afterId, limit)
  }

  /** Keys of every owner matching the filter, by id after `afterId`. */
  async #maintenanceScan (filter: Filter<KeyDoc>, afterId: string, limit: number): Promise<KeyRecord[]> {
    if (limit <= 0) return []
    const docs = await this.mongo.keys.find({ ...filter, _id: { $gt: afterId } }, KEY_READ).sort({ _id: 1 }).hint(BY_STATUS_AND_ID).limit(limit).toArray()
    return docs.map(toKey)
  }

  async purgeRevokedKeys (revokedBefore: number, limit: number): Promise<number> {
    if (limit <= 0) return 0
    const before = toDate(revokedBefore)
    const revoked = await this.mongo.keys.find({ status: 'revoked', revokedAt: { $lt: before } }, { projection: { ownerId: 1 } })
      .limit(limit)
      .toArray()
    let purged = 0
    for (const { _id: id, ownerId } of revoked) {
      const deleted = await this.mongo.transaction(async (session) => {
        const result = await this.mongo.keys.deleteOne({ _id: id, ownerId, status: 'revoked', revokedAt: { $lt: before } }, { session })
        if (result.deletedCount === 0) return false
        await this.#deleteKeyData(session, ownerId, id)
        return true
      })
      if (deleted) purged++
    }
    return purged
  }
}
