export type NotificationType = 'quota_80' | 'quota_100' | 'expiring_soon' | 'rotation_due' | 'expired'

export interface NotificationRecord {
  id: string
  ownerId: string
  type: NotificationType
  keyId: string | null
  title: string
  detail: Record<string, unknown>
  /** One notification per dedupe key and owner: running a job twice notifies once. */
  dedupeKey: string
  createdAt: number
  readAt: number | null
}

export type NewNotification = Pick<NotificationRecord, 'type' | 'keyId' | 'title' | 'detail' | 'dedupeKey'>

export interface WebhookRecord { ownerId: string, url: string, secret: string, createdAt: number, updatedAt: number }

export type DeliveryStatus = 'pending' | 'delivered' | 'failed'

export interface DeliveryRecord {
  id: string
  ownerId: string
  /** The event delivered; one delivery per event. */
  eventId: string
  url: string
  payload: string
  status: DeliveryStatus
  attempts: number
  nextAttemptAt: number
  lastError: string | null
  createdAt: number
  deliveredAt: number | null
}

export type NewDelivery = Pick<DeliveryRecord, 'ownerId' | 'eventId' | 'url' | 'payload'>

export type DeliveryPatch = Partial<Pick<DeliveryRecord, 'status' | 'attempts' | 'nextAttemptAt' | 'lastError' | 'deliveredAt'>>

/** Notifications, each owner's webhook, and the webhook deliveries queued for them. */
export interface NotificationsStore {
  createNotification (ownerId: string, notification: NewNotification): Promise<NotificationRecord | null>
  /** Newest first; `beforeId` continues after the last one seen. */
  listNotifications (ownerId: string, query: { limit: number, beforeId?: string, unreadOnly?: boolean }): Promise<NotificationRecord[]>
  markNotificationRead (ownerId: string, id: string, now: number): Promise<NotificationRecord | null>

  getWebhook (ownerId: string): Promise<WebhookRecord | null>
  setWebhook (ownerId: string, webhook: { url: string, secret: string } | null): Promise<WebhookRecord | null>
  /** Queues a delivery once per event (null when the event was queued before). */
  enqueueDelivery (delivery: NewDelivery, now: number): Promise<DeliveryRecord | null>
  dueDeliveries (now: number, limit: number): Promise<DeliveryRecord[]>
  getDelivery (id: string): Promise<DeliveryRecord | null>
  updateDelivery (id: string, patch: DeliveryPatch): Promise<void>
}
