import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { JobContext } from '../../jobs/context.ts'
import { EmbeddedScheduler } from '../../jobs/embedded.ts'
import { Notifier, WebhookSecrets } from './notifications/notifier.ts'

declare module 'fastify' {
  interface FastifyInstance {
    notifier: Notifier
    webhookSecrets: WebhookSecrets
    jobContext: JobContext
    /** The in-process scheduler of embedded mode; null when a worker process runs the jobs (Redis). */
    scheduler: EmbeddedScheduler | null
  }
}

/**
 * Notifications and maintenance jobs in the API process. With Redis the jobs run in worker
 * processes (`npm run worker`); without it this process schedules them itself, one process at a
 * time (a store lease), and attempts due webhook deliveries.
 */
export default fp(async function jobsPlugin (fastify: FastifyInstance) {
  const { config } = fastify
  const webhookSecrets = new WebhookSecrets(config.keys.hashSecret)
  const notifier = new Notifier({
    store: fastify.store,
    clock: fastify.clock,
    secrets: webhookSecrets,
    allowPrivate: config.webhooks.allowPrivate,
    timeoutMs: config.webhooks.timeoutMs
  })
  const ctx: JobContext = { store: fastify.store, cache: fastify.cache, redis: fastify.redis, clock: fastify.clock, notifier, config, log: fastify.log }
  fastify.decorate('notifier', notifier)
  fastify.decorate('webhookSecrets', webhookSecrets)
  fastify.decorate('jobContext', ctx)
  const scheduler = fastify.redis === null && config.jobs.embedded ? new EmbeddedScheduler(ctx) : null
  fastify.decorate('scheduler', scheduler)
  if (scheduler !== null) {
    fastify.addHook('onReady', async () => { scheduler.start() })
    fastify.addHook('onClose', async () => { await scheduler.stop() })
  }
}, { name: 'jobs', dependencies: ['config', 'store', 'cache', 'clock', 'redis'] })
