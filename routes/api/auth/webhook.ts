import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { principalOf } from '../../../plugins/app/auth/index.ts'
import { NoContent } from '../../../schemas/common.ts'
import { errorResponses } from '../../../schemas/error.ts'
import { WebhookBody, WebhookView } from '../../../schemas/notifications.ts'

/** The account's webhook: notifications are POSTed to it, signed with its secret. */
const webhook: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.addHook('onRequest', fastify.authenticate)
  const tags = ['notifications']
  const security = [{ bearerAuth: [] }]

  fastify.get('/me/webhook', {
    schema: { operationId: 'getWebhook', summary: 'The account\'s webhook (never its secret)', tags, security, response: { 200: WebhookView, ...errorResponses(401) } }
  }, async (request) => fastify.notifications.webhook(principalOf(request).id))

  fastify.put('/me/webhook', {
    schema: {
      operationId: 'setWebhook',
      summary: 'Set the account\'s webhook',
      description: 'Deliveries are JSON, signed with HMAC-SHA256 in `Keyward-Signature: t=<unix time>,v1=<hex of HMAC(secret, "t.body")>`, retried with backoff, one per event. Loopback, link-local, private and reserved addresses, and IPv6 forms that reach them (IPv4-mapped, NAT64, 6to4), are refused (400 WEBHOOK_URL_FORBIDDEN), here and again after DNS resolution at delivery.',
      tags,
      security,
      body: WebhookBody,
      response: { 200: WebhookView, ...errorResponses(400, 401, 413, 415) }
    }
  }, async (request, reply) => {
    const hook = await fastify.notifications.setWebhook(principalOf(request).id, request.body)
    return reply.header('cache-control', 'no-store').send(hook)
  })

  fastify.delete('/me/webhook', {
    schema: { operationId: 'deleteWebhook', summary: 'Remove the account\'s webhook', tags, security, response: { 204: NoContent, ...errorResponses(401) } }
  }, async (request, reply) => {
    await fastify.notifications.removeWebhook(principalOf(request).id)
    return reply.code(204).send(null)
  })
}

export default webhook
