import { randomUUID } from 'node:crypto'
import type { AnyBulkWriteOperation, ClientSession, Collection, Filter, UpdateFilter, WithId } from 'mongodb'
import { monthStart } from '../shared.ts'
import type { UsageDelta, UsagePoint, UsageStore, UsageTotal } from '../types/index.ts'
import { CreateConflict, isDuplicateKey, type MongoConnection } from './connection.ts'
import type { KeyDoc, UsageHourlyDoc, UsageMonthlyDoc } from './documents.ts'
import { toDate, toUsageTotal } from './mappers.ts'

const DAY_MS = 86_400_000

/** One rollupDaily group: a key's usage over one UTC day. */
interface DailyGroup {
  _id: { keyId: string, ownerId: string, day: Date }
  units: number
  requests: number
}

/** Batch ids a usage counter remembers: a batch retried after more than this many other flushes touched the counter could count twice. */
const BATCHES_KEPT = 100

type Counter = UsageHourlyDoc | UsageMonthlyDoc

/** Adds a delta to one counter unless this batch already did (its id is then in `batches`). */
function counterUpsert<T extends Counter> (_id: string, batchId: string, d: UsageDelta, period: Partial<T>): AnyBulkWriteOperation<T> {
  return {
    updateOne: {
      filter: { _id, batches: { $ne: batchId } } as Filter<T>,
      update: {
        $inc: { units: d.units, requests: d.requests },
        $setOnInsert: { keyId: d.keyId, ownerId: d.ownerId, ...period },
        $push: { batches: { $each: [batchId], $slice: -BATCHES_KEPT } }
      } as unknown as UpdateFilter<T>,
      upsert: true
    }
  }
}

/**
 * An upsert whose filter misses an existing counter tries to insert its _id and fails with a
 * duplicate key: either the batch was applied already or a concurrent flush created the counter
 * first. Sent again without upsert, the update tells the two apart (it matches only in the second case).
 */
async function applyCounters<T extends Counter> (collection: Collection<T>, ops: Array<AnyBulkWriteOperation<T>>): Promise<void> {
  try {
    await collection.bulkWrite(ops, { ordered: false })
  } catch (err) {
    const failed = writeErrorsOf(err)
    if (failed === null || failed.length === 0 || failed.some((e) => e.code !== 11000)) throw err
    await collection.bulkWrite(failed.map((e) => {
      const op = ops[e.index] as { updateOne: { filter: Filter<T>, update: UpdateFilter<T> } }
      return { updateOne: { filter: op.updateOne.filter, update: op.updateOne.update } }
    }), { ordered: false })
  }
}

/** The per-operation failures of an unordered bulkWrite (MongoBulkWriteError), or null for any other error. */
function writeErrorsOf (err: unknown): Array<{ index: number, code: number }> | null {
  const writeErrors = (err as { writeErrors?: unknown }).writeErrors
  if (writeErrors === undefined || writeErrors === null) return null
  const list = Array.isArray(writeErrors) ? writeErrors : [writeErrors]
  return list.map((e: { index: number, code: number }) => ({ index: e.index, code: e.code }))
}

export class MongoUsage implements UsageStore {
  constructor (private readonly mongo: MongoConnection) {}

  /** Adds one delta inside the caller's transaction; the key's new total for the month. */
  async #addUsage (session: ClientSession, d: UsageDelta): Promise<UsageTotal> {
    const hour = toDate(d.hour)
    const month = toDate(monthStart(d.hour))
    const inc = { units: d.units, requests: d.requests }
    const hourId = `${d.keyId}:${d.hour}`
    const monthId = `${d.keyId}:${month.getTime()}`
    let total: WithId<UsageMonthlyDoc> | null
    try {
      await this.mongo.usageHourly.updateOne({ _id: hourId },
        { $inc: inc, $setOnInsert: { keyId: d.keyId, ownerId: d.ownerId, hour } }, { upsert: true, session })
      total = await this.mongo.usageMonthly.findOneAndUpdate({ _id: monthId },
        { $inc: inc, $setOnInsert: { keyId: d.keyId, ownerId: d.ownerId, month } },
        { upsert: true, returnDocument: 'after', session })
    } catch (err) {
      // Two upserts creating the same counter: the loser starts over and then increments the winner's.
      if (isDuplicateKey(err)) throw new CreateConflict(`usage counter of ${d.keyId}`, err)
      throw err
    }
    if (total === null) throw new Error(`usage counter ${monthId} missing after its upsert`)
    const lastUsedAt = toDate(d.lastUsedAt)
    // Only ever forward: a late flush of older usage leaves a newer lastUsedAt alone.
    await this.mongo.keys.updateOne({ _id: d.keyId, ownerId: d.ownerId, $or: [{ lastUsedAt: null }, { lastUsedAt: { $lt: lastUsedAt } }] },
      { $set: { lastUsedAt } }, { session })
    return toUsageTotal(total)
  }

  /**
   * Unordered upserts with $inc, no transaction: increments commute, so flushes of several
   * instances never conflict and one slow counter does not hold the others. Each counter keeps the
   * ids of the last BATCHES_KEPT batches it took, and a batch applies only where its id is absent,
   * so a batch sent again after an unknown outcome is counted once per counter.
   */
  async recordUsage (deltas: UsageDelta[], batchId: string = randomUUID()): Promise<UsageTotal[]> {
    if (deltas.length === 0) return []
    const hourly: Array<AnyBulkWriteOperation<UsageHourlyDoc>> = []
    const monthly: Array<AnyBulkWriteOperation<UsageMonthlyDoc>> = []
    const lastUse: Array<AnyBulkWriteOperation<KeyDoc>> = []
    const monthIds = new Set<string>()
    for (const d of deltas) {
      const month = toDate(monthStart(d.hour))
      const monthId = `${d.keyId}:${month.getTime()}`
      monthIds.add(monthId)
      hourly.push(counterUpsert<UsageHourlyDoc>(`${d.keyId}:${d.hour}`, batchId, d, { hour: toDate(d.hour) }))
      monthly.push(counterUpsert<UsageMonthlyDoc>(monthId, batchId, d, { month }))
      // $max only ever moves forward, so it needs no batch id: applying it twice changes nothing.
      lastUse.push({ updateOne: { filter: { _id: d.keyId, ownerId: d.ownerId }, update: { $max: { lastUsedAt: toDate(d.lastUsedAt) } } } })
    }
    await Promise.all([
      applyCounters(this.mongo.usageHourly, hourly),
      applyCounters(this.mongo.usageMonthly, monthly),
      this.mongo.keys.bulkWrite(lastUse, { ordered: false })
    ])
    const totals = await this.mongo.usageMonthly.find({ _id: { $in: [...monthIds] } }).toArray()
    return totals.map(toUsageTotal)
  }

  async recordUsageOnce (ownerId: string, idempotencyKey: string, delta: UsageDelta): Promise<{ duplicate: boolean, total: UsageTotal }> {
    const _id = `${ownerId}:${idempotencyKey}`
    const { idempotency, usageMonthly } = this.mongo
    return await this.mongo.transaction(async (session) => {
      // Looked up first: a duplicate key inside a transaction aborts it, so the insert is kept for the race.
      const seen = await idempotency.findOne({ _id }, { projection: { _id: 1 }, session })
      if (seen === null) {
        try {
          await idempotency.insertOne({ _id, ownerId, keyId: delta.keyId, createdAt: new Date() }, { session })
        } catch (err) {
          // A concurrent call with the same key committed after this snapshot; the retry sees its record.
          if (isDuplicateKey(err)) throw new CreateConflict(`idempotency key of ${ownerId}`, err)
          throw err
        }
        return { duplicate: false, total: await this.#addUsage(session, delta) }
      }
      const month = monthStart(delta.hour)
      const doc = await usageMonthly.findOne({ _id: `${delta.keyId}:${month}`, ownerId }, { session })
      const total = doc === null ? { keyId: delta.keyId, month, units: 0, requests: 0 } : toUsageTotal(doc)
      return { duplicate: true, total }
    })
  }

  async monthlyUsage (ownerId: string, month: number, keyIds?: string[]): Promise<UsageTotal[]> {
    if (keyIds !== undefined && keyIds.length === 0) return []
    const filter: Filter<UsageMonthlyDoc> = { ownerId, month: toDate(month) }
    if (keyIds !== undefined) filter.keyId = { $in: keyIds }
    const docs = await this.mongo.usageMonthly.find(filter).sort({ keyId: 1 }).toArray()
    return docs.map(toUsageTotal)
  }

  async usageSeries (ownerId: string, keyId: string, fromHour: number, toHour: number): Promise<UsagePoint[]> {
    const docs = await this.mongo.usageHourly
      .find({ keyId, ownerId, hour: { $gte: toDate(fromHour), $lt: toDate(toHour) } }, { projection: { hour: 1, units: 1, requests: 1 }, ...this.mongo.staleRead })
      .sort({ hour: 1 })
      .toArray()
    return docs.map((doc) => ({ hour: doc.hour.getTime(), units: doc.units, requests: doc.requests }))
  }

  async usageDaily (ownerId: string, keyId: string, fromDay: number, toDay: number): Promise<UsagePoint[]> {
    const docs = await this.mongo.dailyUsage
      .find({ keyId, ownerId, day: { $gte: toDate(fromDay), $lt: toDate(toDay) } }, { projection: { day: 1, units: 1, requests: 1 }, ...this.mongo.staleRead })
      .sort({ day: 1 })
      .toArray()
    return docs.map((doc) => ({ hour: doc.day.getTime(), units: doc.units, requests: doc.requests }))
  }

  async rollupDaily (fromHour: number, toHour: number): Promise<number> {
    const fromDay = fromHour - (fromHour % DAY_MS)
    const toDay = toHour - (toHour % DAY_MS) + DAY_MS
    const groups = await this.mongo.usageHourly.aggregate<DailyGroup>([
      { $match: { hour: { $gte: toDate(fromDay), $lt: toDate(toDay) } } },
      {
        $group: {
          // A date minus its milliseconds into the UTC day is the day's start, still a date.
          _id: { keyId: '$keyId', ownerId: '$ownerId', day: { $subtract: ['$hour', { $mod: [{ $toLong: '$hour' }, DAY_MS] }] } },
          units: { $sum: '$units' },
          requests: { $sum: '$requests' }
        }
      }
    ]).toArray()
    if (groups.length === 0) return 0
    // Set, not incremented: running the rollup again over the same hours writes the same totals.
    await this.mongo.dailyUsage.bulkWrite(groups.map((g) => ({
      updateOne: {
        filter: { _id: `${g._id.keyId}:${g._id.day.getTime()}` },
        update: {
          $set: { units: g.units, requests: g.requests },
          $setOnInsert: { keyId: g._id.keyId, ownerId: g._id.ownerId, day: g._id.day }
        },
        upsert: true
      }
    })), { ordered: false })
    return groups.length
  }

  async purgeUsageHourly (before: number, limit: number): Promise<number> {
    if (limit <= 0) return 0
    const docs = await this.mongo.usageHourly.find({ hour: { $lt: toDate(before) } }, { projection: { _id: 1 } }).limit(limit).toArray()
    if (docs.length === 0) return 0
    const result = await this.mongo.usageHourly.deleteMany({ _id: { $in: docs.map((doc) => doc._id) } })
    return result.deletedCount
  }

  async purgeIdempotency (before: number, limit: number): Promise<number> {
    if (limit <= 0) return 0
    const docs = await this.mongo.idempotency.find({ createdAt: { $lt: toDate(before) } }, { projection: { _id: 1 } }).limit(limit).toArray()
    if (docs.length === 0) return 0
    const result = await this.mongo.idempotency.deleteMany({ _id: { $in: docs.map((doc) => doc._id) } })
    return result.deletedCount
  }
}
