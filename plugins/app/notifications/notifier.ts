import { hkdfSync } from 'node:crypto'
import type { Clock } from '../clock.ts'
import type { DeliveryRecord, NewNotification, NotificationRecord, NotificationsStore } from '../store/types/index.ts'
import { open, seal } from '../vault/crypto.ts'
import { deliver } from './webhooks.ts'

export const MAX_DELIVERY_ATTEMPTS = 8
const FIRST_RETRY_MS = 30_000
const LONGEST_RETRY_MS = 3_600_000

/** The delay before attempt n+1: 30 s, 1 min, 2 min ... capped at an hour. */
export function retryDelay (attempts: number): number {
  return Math.min(FIRST_RETRY_MS * 2 ** Math.max(0, attempts - 1), LONGEST_RETRY_MS)
}

/** Webhook signing secrets are kept sealed under a key derived from the server's pepper. */
export class WebhookSecrets {
  private readonly key: Buffer
  constructor (serverSecret: string) {
    this.key = Buffer.from(hkdfSync('sha256', serverSecret, 'keyward', 'webhook-signing-secrets', 32))
  }

  seal (ownerId: string, secret: string): string {
    return seal(this.key, secret, { ownerId, keyId: 'webhook', version: 1 })
  }

  open (ownerId: string, sealed: string): string {
    return open(this.key, sealed, { ownerId, keyId: 'webhook', version: 1 })
  }
}

export interface NotifierOptions {
  store: NotificationsStore
  clock: Clock
  secrets: WebhookSecrets
  allowPrivate: boolean
  timeoutMs: number
  /** Hands a new delivery to a queue (BullMQ with Redis); embedded mode polls the store instead. */
  onQueued?: (delivery: DeliveryRecord) => Promise<void>
}

/** Notifications for users, and their signed webhook deliveries (one per event, retried with backoff). */
export class Notifier {
  constructor (private readonly options: NotifierOptions) {}

  async notify (ownerId: string, notification: NewNotification): Promise<NotificationRecord | null> {
    const { store, clock } = this.options
    const created = await store.createNotification(ownerId, notification)
    if (created === null) return null
    const hook = await store.getWebhook(ownerId)
    if (hook !== null) {
      const payload = JSON.stringify({
        id: created.id,
        type: created.type,
        keyId: created.keyId,
        title: created.title,
        detail: created.detail,
        createdAt: new Date(created.createdAt).toISOString()
      })
      const delivery = await store.enqueueDelivery({ ownerId, eventId: created.id, url: hook.url, payload }, clock.now())
      if (delivery !== null) await this.options.onQueued?.(delivery)
    }
    return created
  }

  /** One attempt at a delivery; on failure the next attempt is scheduled, or the delivery fails for good. */
  async attempt (delivery: DeliveryRecord): Promise<'delivered' | 'retry' | 'failed'> {
    const { store, clock } = this.options
    const hook = await store.getWebhook(delivery.ownerId)
    if (hook === null) {
      await store.updateDelivery(delivery.id, { status: 'failed', lastError: 'the webhook was removed' })
      return 'failed'
    }
    const attempts = delivery.attempts + 1
    try {
      await deliver(hook.url, delivery.payload, this.options.secrets.open(delivery.ownerId, hook.secret), {
        allowPrivate: this.options.allowPrivate, timeoutMs: this.options.timeoutMs, eventId: delivery.eventId
      })
      await store.updateDelivery(delivery.id, { status: 'delivered', attempts, deliveredAt: clock.now(), lastError: null })
      return 'delivered'
    } catch (err) {
      const lastError = (err as Error).message.slice(0, 200)
      if (attempts >= MAX_DELIVERY_ATTEMPTS) {
        await store.updateDelivery(delivery.id, { status: 'failed', attempts, lastError })
        return 'failed'
      }
      await store.updateDelivery(delivery.id, { attempts, nextAttemptAt: clock.now() + retryDelay(attempts), lastError })
      return 'retry'
    }
  }

  /** Attempts every due delivery (embedded mode's queue), in a bounded batch. */
  async deliverDue (limit = 50): Promise<Record<string, number>> {
    const counts = { delivered: 0, retry: 0, failed: 0 }
    for (const delivery of await this.options.store.dueDeliveries(this.options.clock.now(), limit)) {
      counts[await this.attempt(delivery)]++
    }
    return counts
  }
}
