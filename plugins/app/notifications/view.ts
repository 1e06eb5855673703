import type { NotificationRecord, WebhookRecord } from '../store/types/index.ts'
import { iso } from '../time.ts'

/** The API's view of a notification. */
export function notificationView (n: NotificationRecord) {
  return {
    id: n.id,
    type: n.type,
    keyId: n.keyId,
    title: n.title,
    detail: n.detail,
    createdAt: iso(n.createdAt),
    readAt: iso(n.readAt)
  }
}

/** The API's view of an account's webhook: never its secret. */
export function webhookView (hook: WebhookRecord | null) {
  return { configured: hook !== null, url: hook?.url ?? null, updatedAt: hook === null ? null : iso(hook.updatedAt) }
}
