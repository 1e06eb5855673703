import { newId } from '../ids.ts'
import type { JobRunRecord, OpsStore, StatsSnapshot, SystemCounts } from '../types/index.ts'
import { isDuplicateKey, type MongoConnection } from './connection.ts'
import { jsonValue, toDate, toJobRun } from './mappers.ts'

/** Runs kept per job; recordJobRun drops older ones. */
const JOB_RUNS_KEPT = 200

export class MongoOps implements OpsStore {
  constructor (private readonly mongo: MongoConnection) {}

  async recordJobRun (run: Omit<JobRunRecord, 'id'>): Promise<JobRunRecord> {
    const record: JobRunRecord = { id: newId(run.startedAt), ...run, durationMs: Math.round(run.durationMs), result: jsonValue(run.result) }
    await this.mongo.jobRuns.insertOne({
      _id: record.id,
      job: record.job,
      startedAt: toDate(record.startedAt),
      durationMs: record.durationMs,
      ok: record.ok,
      result: record.result,
      error: record.error
    })
    const old = await this.mongo.jobRuns.find({ job: run.job }, { projection: { _id: 1 } })
      .sort({ startedAt: -1, _id: -1 })
      .skip(JOB_RUNS_KEPT)
      .toArray()
    if (old.length > 0) await this.mongo.jobRuns.deleteMany({ _id: { $in: old.map((doc) => doc._id) } })
    return record
  }

  async jobRuns (job: string, limit: number): Promise<JobRunRecord[]> {
    if (limit <= 0) return []
    const docs = await this.mongo.jobRuns.find({ job }).sort({ startedAt: -1, _id: -1 }).limit(limit).toArray()
    return docs.map(toJobRun)
  }

  async saveStatsSnapshot (snapshot: StatsSnapshot): Promise<void> {
    await this.mongo.snapshots.updateOne({ _id: toDate(snapshot.at) }, { $set: { data: jsonValue(snapshot.data) } }, { upsert: true })
  }

  async statsSnapshots (from: number, to: number, limit: number): Promise<StatsSnapshot[]> {
    if (limit <= 0) return []
    const docs = await this.mongo.snapshots.find({ _id: { $gte: toDate(from), $lt: toDate(to) } }, this.mongo.staleRead).sort({ _id: 1 }).limit(limit).toArray()
    return docs.map((doc) => ({ at: doc._id.getTime(), data: doc.data ?? {} }))
  }

  async purgeStatsSnapshots (before: number): Promise<number> {
    const result = await this.mongo.snapshots.deleteMany({ _id: { $lt: toDate(before) } })
    return result.deletedCount
  }

  async systemCounts (now: number): Promise<SystemCounts> {
    const m = this.mongo
    const stale = m.staleRead
    // Whole-collection totals from the collection's metadata: counting them would scan every document.
    const [allUsers, deletedUsers, keys, activeKeys, sessions, unreadNotifications, pendingDeliveries] = await Promise.all([
      m.users.estimatedDocumentCount(stale),
      m.users.countDocuments({ deletedAt: { $type: 'date' } }, stale),
      m.keys.estimatedDocumentCount(stale),
      m.keys.countDocuments({ status: 'active' }, stale),
      m.sessions.countDocuments({ revokedAt: null, expiresAt: { $gt: toDate(now) } }, stale),
      m.notifications.countDocuments({ readAt: null }, stale),
      m.deliveries.countDocuments({ status: 'pending' }, stale)
    ])
    return { users: allUsers - deletedUsers, keys, activeKeys, sessions, unreadNotifications, pendingDeliveries }
  }

  async acquireLease (name: string, holder: string, ttlMs: number, now: number): Promise<boolean> {
    const expiresAt = now + ttlMs
    // Renewed by its holder or taken over once expired, in one atomic step.
    const taken = await this.mongo.leases.updateOne({ _id: name, $or: [{ holder }, { expiresAt: { $lte: now } }] },
      { $set: { holder, expiresAt } })
    if (taken.matchedCount > 0) return true
    try {
      await this.mongo.leases.insertOne({ _id: name, holder, expiresAt })
      return true
    } catch (err) {
      // Someone else holds it (or created it a moment ago).
      if (isDuplicateKey(err)) return false
      throw err
    }
  }

  async releaseLease (name: string, holder: string): Promise<void> {
    await this.mongo.leases.deleteOne({ _id: name, holder })
  }
}
