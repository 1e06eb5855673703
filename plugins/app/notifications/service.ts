import { randomBytes } from 'node:crypto'
import type { Static } from 'typebox'
import type { NotificationQuery, WebhookBody } from '../../../schemas/notifications.ts'
import type { Clock } from '../clock.ts'
import { AppError, notFound } from '../errors.ts'
import { isId } from '../store/ids.ts'
import type { NotificationsStore } from '../store/types/index.ts'
import type { WebhookSecrets } from './notifier.ts'
import { notificationView, webhookView } from './view.ts'
import { checkWebhookUrl, ForbiddenWebhookError } from './webhooks.ts'

export interface NotificationServiceOptions {
  store: NotificationsStore
  clock: Clock
  secrets: WebhookSecrets
  allowPrivate: boolean
}

/** A user's notifications and the webhook they are delivered to, as the API reads and sets them. */
export class NotificationService {
  constructor (private readonly options: NotificationServiceOptions) {}

  /** Webhook signing secrets are stored sealed; this seals one for an owner. */
  get secrets (): WebhookSecrets {
    return this.options.secrets
  }

  async list (ownerId: string, query: Static<typeof NotificationQuery>) {
    const { limit = 50, cursor, unread } = query
    if (cursor !== undefined && !isId(cursor)) throw new AppError(400, 'INVALID_CURSOR', 'The cursor is malformed')
    const rows = await this.options.store.listNotifications(ownerId, { limit: limit + 1, beforeId: cursor, unreadOnly: unread })
    const items = rows.slice(0, limit)
    return { items: items.map(notificationView), nextCursor: rows.length > limit ? items[items.length - 1]!.id : null }
  }

  async markRead (ownerId: string, id: string) {
    const marked = isId(id) ? await this.options.store.markNotificationRead(ownerId, id, this.options.clock.now()) : null
    if (marked === null) throw notFound('Notification')
    return notificationView(marked)
  }

  async webhook (ownerId: string) {
    return webhookView(await this.options.store.getWebhook(ownerId))
  }

  /** Sets the webhook; a secret generated here is in this answer only. */
  async setWebhook (ownerId: string, body: Static<typeof WebhookBody>) {
    try {
      checkWebhookUrl(body.url, this.options.allowPrivate)
    } catch (err) {
      if (err instanceof ForbiddenWebhookError) throw new AppError(400, 'WEBHOOK_URL_FORBIDDEN', err.message)
      throw err
    }
    const generated = body.secret === undefined ? 'whsec_' + randomBytes(24).toString('base64url') : undefined
    const secret = body.secret ?? generated as string
    const hook = await this.options.store.setWebhook(ownerId, { url: body.url, secret: this.options.secrets.seal(ownerId, secret) })
    return {
      configured: true,
      url: hook?.url ?? body.url,
      updatedAt: new Date(hook?.updatedAt ?? Date.now()).toISOString(),
      ...(generated === undefined ? {} : { secret: generated })
    }
  }

  async removeWebhook (ownerId: string) {
    await this.options.store.setWebhook(ownerId, null)
  }
}
