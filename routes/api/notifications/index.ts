import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { principalOf } from '../../../plugins/app/auth/index.ts'
import { IdParams } from '../../../schemas/common.ts'
import { errorResponses } from '../../../schemas/error.ts'
import { NotificationList, NotificationQuery, NotificationView } from '../../../schemas/notifications.ts'

/** The signed-in user's notifications: quota, expiry and rotation. */
const notifications: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.addHook('onRequest', fastify.authenticate)
  const tags = ['notifications']
  const security = [{ bearerAuth: [] }]

  fastify.get('/', {
    schema: {
      operationId: 'listNotifications',
      summary: 'Notifications, newest first',
      tags,
      security,
      querystring: NotificationQuery,
      response: { 200: NotificationList, ...errorResponses(400, 401) }
    }
  }, async (request) => fastify.notifications.list(principalOf(request).id, request.query))

  fastify.post('/:id/read', {
    schema: {
      operationId: 'markNotificationRead',
      summary: 'Mark a notification read',
      tags,
      security,
      params: IdParams,
      response: { 200: NotificationView, ...errorResponses(401, 404) }
    }
  }, async (request) => fastify.notifications.markRead(principalOf(request).id, request.params.id))
}

export default notifications
