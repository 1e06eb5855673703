import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { principalOf } from '../../../plugins/app/auth/index.ts'
import { AppError, notFound } from '../../../plugins/app/errors.ts'
import { isId } from '../../../plugins/app/store/ids.ts'
import type { NotificationRecord } from '../../../plugins/app/store/types/index.ts'
import { IdParams } from '../../../schemas/common.ts'
import { errorResponses } from '../../../schemas/error.ts'
import { NotificationList, NotificationQuery, NotificationView } from '../../../schemas/notifications.ts'

export function notificationView (n: NotificationRecord) {
  return {
    id: n.id,
    type: n.type,
    keyId: n.keyId,
    title: n.title,
    detail: n.detail,
    createdAt: new Date(n.createdAt).toISOString(),
    readAt: n.readAt === null ? null : new Date(n.readAt).toISOString()
  }
}

/** The signed-in user's notifications: quota, expiry and rotation. */
const notifications: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.addHook('onRequest', fastify.authenticate)
  const tags = ['notifications']
  const security = [{ bearerAuth: [] }]

  fastify.get('/', {
    schema: {
      summary: 'Notifications, newest first',
      tags,
      security,
      querystring: NotificationQuery,
      response: { 200: NotificationList, ...errorResponses(400, 401) }
    }
  }, async (request) => {
    const { limit = 50, cursor, unread } = request.query
    if (cursor !== undefined && !isId(cursor)) throw new AppError(400, 'INVALID_CURSOR', 'The cursor is malformed')
    const rows = await fastify.store.listNotifications(principalOf(request).id, { limit: limit + 1, beforeId: cursor, unreadOnly: unread })
    const items = rows.slice(0, limit)
    return { items: items.map(notificationView), nextCursor: rows.length > limit ? items[items.length - 1]!.id : null }
  })

  fastify.post('/:id/read', {
    schema: {
      summary: 'Mark a notification read',
      tags,
      security,
      params: IdParams,
      response: { 200: NotificationView, ...errorResponses(401, 404) }
    }
  }, async (request) => {
    const id = request.params.id
    const marked = isId(id) ? await fastify.store.markNotificationRead(principalOf(request).id, id, fastify.clock.now()) : null
    if (marked === null) throw notFound('Notification')
    return notificationView(marked)
  })
}

export default notifications
