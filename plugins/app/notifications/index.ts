import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Notifier, WebhookSecrets } from './notifier.ts'
import { NotificationService } from './service.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** A user's notifications and webhook, as the API reads and sets them. */
    notifications: NotificationService
    /** Raises notifications and delivers them to webhooks (the maintenance jobs use it). */
    notifier: Notifier
  }
}

/** Notifications for users and their signed webhook deliveries. */
export default fp(async function notificationsPlugin (fastify: FastifyInstance) {
  const { config } = fastify
  const secrets = new WebhookSecrets(config.keys.hashSecret)
  fastify.decorate('notifications', new NotificationService({ store: fastify.store, clock: fastify.clock, secrets, allowPrivate: config.webhooks.allowPrivate }))
  fastify.decorate('notifier', new Notifier({
    store: fastify.store,
    clock: fastify.clock,
    secrets,
    allowPrivate: config.webhooks.allowPrivate,
    timeoutMs: config.webhooks.timeoutMs
  }))
}, { name: 'notifications', dependencies: ['config', 'store', 'clock'] })
