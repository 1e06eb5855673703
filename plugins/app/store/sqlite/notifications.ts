import { newId } from '../ids.ts'
import type {
  DeliveryPatch, DeliveryRecord, NewDelivery, NewNotification, NotificationRecord, NotificationsStore, WebhookRecord
} from '../types/index.ts'
import type { SqliteConnection } from './connection.ts'
import { toDelivery, toNotification, toWebhook } from './mappers.ts'

const DELIVERY_COLUMNS: Record<keyof DeliveryPatch, string> = {
  status: 'status', attempts: 'attempts', nextAttemptAt: 'next_attempt_at', lastError: 'last_error', deliveredAt: 'delivered_at'
}

export class SqliteNotifications implements NotificationsStore {
  constructor (private readonly db: SqliteConnection) {}

  async createNotification (ownerId: string, n: NewNotification): Promise<NotificationRecord | null> {
    const now = Date.now()
    const record: NotificationRecord = { id: newId(now), ownerId, ...n, createdAt: now, readAt: null }
    const inserted = this.db.run(`INSERT INTO notifications (id, owner_id, type, key_id, title, detail, dedupe_key, created_at, read_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL) ON CONFLICT (owner_id, dedupe_key) DO NOTHING`,
    record.id, ownerId, n.type, n.keyId, n.title, JSON.stringify(n.detail), n.dedupeKey, now)
    return inserted > 0 ? record : null
  }

  async listNotifications (ownerId: string, query: { limit: number, beforeId?: string, unreadOnly?: boolean }): Promise<NotificationRecord[]> {
    const where = ['owner_id = ?']
    const params: unknown[] = [ownerId]
    if (query.beforeId !== undefined) { where.push('id < ?'); params.push(query.beforeId) }
    if (query.unreadOnly === true) where.push('read_at IS NULL')
    params.push(query.limit)
    return this.db.all(`SELECT * FROM notifications WHERE ${where.join(' AND ')} ORDER BY id DESC LIMIT ?`, ...params).map(toNotification)
  }

  async markNotificationRead (ownerId: string, id: string, now: number): Promise<NotificationRecord | null> {
    this.db.run('UPDATE notifications SET read_at = ? WHERE id = ? AND owner_id = ? AND read_at IS NULL', now, id, ownerId)
    const row = this.db.get('SELECT * FROM notifications WHERE id = ? AND owner_id = ?', id, ownerId)
    return row === undefined ? null : toNotification(row)
  }

  async getWebhook (ownerId: string): Promise<WebhookRecord | null> {
    const row = this.db.get('SELECT * FROM webhooks WHERE owner_id = ?', ownerId)
    return row === undefined ? null : toWebhook(row)
  }

  async setWebhook (ownerId: string, webhook: { url: string, secret: string } | null): Promise<WebhookRecord | null> {
    if (webhook === null) {
      this.db.run('DELETE FROM webhooks WHERE owner_id = ?', ownerId)
      return null
    }
    const now = Date.now()
    this.db.run(`INSERT INTO webhooks (owner_id, url, secret, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (owner_id) DO UPDATE SET url = excluded.url, secret = excluded.secret, updated_at = excluded.updated_at`,
    ownerId, webhook.url, webhook.secret, now, now)
    return this.getWebhook(ownerId)
  }

  async enqueueDelivery (d: NewDelivery, now: number): Promise<DeliveryRecord | null> {
    const record: DeliveryRecord = { id: newId(now), ...d, status: 'pending', attempts: 0, nextAttemptAt: now, lastError: null, createdAt: now, deliveredAt: null }
    const inserted = this.db.run(`INSERT INTO deliveries (id, owner_id, event_id, url, payload, status, attempts, next_attempt_at, last_error, created_at, delivered_at)
      VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, NULL, ?, NULL) ON CONFLICT (event_id) DO NOTHING`,
    record.id, d.ownerId, d.eventId, d.url, d.payload, now, now)
    return inserted > 0 ? record : null
  }

  async dueDeliveries (now: number, limit: number): Promise<DeliveryRecord[]> {
    return this.db.all("SELECT * FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?", now, limit).map(toDelivery)
  }

  async getDelivery (id: string): Promise<DeliveryRecord | null> {
    const row = this.db.get('SELECT * FROM deliveries WHERE id = ?', id)
    return row === undefined ? null : toDelivery(row)
  }

  async updateDelivery (id: string, patch: DeliveryPatch): Promise<void> {
    const entries = (Object.entries(patch) as Array<[keyof DeliveryPatch, unknown]>).filter(([, v]) => v !== undefined)
    if (entries.length === 0) return
    this.db.run(`UPDATE deliveries SET ${entries.map(([k]) => `${DELIVERY_COLUMNS[k]} = ?`).join(', ')} WHERE id = ?`, ...entries.map(([, v]) => v), id)
  }
}
