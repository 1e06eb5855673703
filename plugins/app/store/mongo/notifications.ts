import type { Filter } from 'mongodb'
import { newId } from '../ids.ts'
import type {
  DeliveryPatch, DeliveryRecord, NewDelivery, NewNotification, NotificationRecord, NotificationsStore, WebhookRecord
} from '../types/index.ts'
import { isDuplicateKey, type MongoConnection } from './connection.ts'
import type { DeliveryDoc, NotificationDoc } from './documents.ts'
import { jsonValue, toDate, toDateOrNull, toDelivery, toNotification, toWebhook } from './mappers.ts'

export class MongoNotifications implements NotificationsStore {
  constructor (private readonly mongo: MongoConnection) {}

  async createNotification (ownerId: string, n: NewNotification): Promise<NotificationRecord | null> {
    const now = Date.now()
    const record: NotificationRecord = { id: newId(now), ownerId, ...n, detail: jsonValue(n.detail), createdAt: now, readAt: null }
    try {
      await this.mongo.notifications.insertOne({
        _id: record.id,
        ownerId,
        type: record.type,
        keyId: record.keyId,
        title: record.title,
        detail: record.detail,
        dedupeKey: record.dedupeKey,
        createdAt: toDate(now),
        readAt: null
      })
    } catch (err) {
      // The owner was notified under this dedupe key before.
      if (isDuplicateKey(err)) return null
      throw err
    }
    return record
  }

  async listNotifications (ownerId: string, query: { limit: number, beforeId?: string, unreadOnly?: boolean }): Promise<NotificationRecord[]> {
    if (query.limit <= 0) return []
    const filter: Filter<NotificationDoc> = { ownerId }
    if (query.beforeId !== undefined) filter._id = { $lt: query.beforeId }
    if (query.unreadOnly === true) filter.readAt = null
    const docs = await this.mongo.notifications.find(filter).sort({ _id: -1 }).limit(query.limit).toArray()
    return docs.map(toNotification)
  }

  async markNotificationRead (ownerId: string, id: string, now: number): Promise<NotificationRecord | null> {
    // Read once: a notification read before keeps its first readAt.
    const doc = await this.mongo.notifications.findOneAndUpdate({ _id: id, ownerId, readAt: null },
      { $set: { readAt: toDate(now) } }, { returnDocument: 'after' }) ??
      await this.mongo.notifications.findOne({ _id: id, ownerId })
    return doc === null ? null : toNotification(doc)
  }

  async getWebhook (ownerId: string): Promise<WebhookRecord | null> {
    const doc = await this.mongo.webhooks.findOne({ _id: ownerId })
    return doc === null ? null : toWebhook(doc)
  }

  async setWebhook (ownerId: string, webhook: { url: string, secret: string } | null): Promise<WebhookRecord | null> {
    if (webhook === null) {
      await this.mongo.webhooks.deleteOne({ _id: ownerId })
      return null
    }
    const now = new Date()
    const doc = await this.mongo.webhooks.findOneAndUpdate({ _id: ownerId },
      { $set: { url: webhook.url, secret: webhook.secret, updatedAt: now }, $setOnInsert: { createdAt: now } },
      { upsert: true, returnDocument: 'after' })
    if (doc === null) throw new Error(`webhook of ${ownerId} missing after its upsert`)
    return toWebhook(doc)
  }

  async enqueueDelivery (d: NewDelivery, now: number): Promise<DeliveryRecord | null> {
    const record: DeliveryRecord = {
      id: newId(now), ...d, status: 'pending', attempts: 0, nextAttemptAt: now, lastError: null, createdAt: now, deliveredAt: null
    }
    try {
      await this.mongo.deliveries.insertOne({
        _id: record.id,
        ownerId: record.ownerId,
        eventId: record.eventId,
        url: record.url,
        payload: record.payload,
        status: record.status,
        attempts: 0,
        nextAttemptAt: toDate(now),
        lastError: null,
        createdAt: toDate(now),
        deliveredAt: null
      })
    } catch (err) {
      // The event was queued before.
      if (isDuplicateKey(err)) return null
      throw err
    }
    return record
  }

  async dueDeliveries (now: number, limit: number): Promise<DeliveryRecord[]> {
    if (limit <= 0) return []
    const docs = await this.mongo.deliveries.find({ status: 'pending', nextAttemptAt: { $lte: toDate(now) } })
      .sort({ nextAttemptAt: 1 })
      .limit(limit)
      .toArray()
    return docs.map(toDelivery)
  }

  async getDelivery (id: string): Promise<DeliveryRecord | null> {
    const doc = await this.mongo.deliveries.findOne({ _id: id })
    return doc === null ? null : toDelivery(doc)
  }

  async updateDelivery (id: string, patch: DeliveryPatch): Promise<void> {
    const set: Partial<DeliveryDoc> = {}
    if (patch.status !== undefined) set.status = patch.status
    if (patch.attempts !== undefined) set.attempts = patch.attempts
    if (patch.nextAttemptAt !== undefined) set.nextAttemptAt = toDate(patch.nextAttemptAt)
    if (patch.lastError !== undefined) set.lastError = patch.lastError
    if (patch.deliveredAt !== undefined) set.deliveredAt = toDateOrNull(patch.deliveredAt)
    if (Object.keys(set).length === 0) return
    await this.mongo.deliveries.updateOne({ _id: id }, { $set: set })
  }
}
