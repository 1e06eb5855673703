import { createBullBoard } from '@bull-board/api'
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter'
import { FastifyAdapter } from '@bull-board/fastify'
import { Queue } from 'bullmq'
import type { FastifyInstance } from 'fastify'
import pageHelmet from '../../plugins/external/helmet.ts'
import { bullConnection, MAINTENANCE_QUEUE, WEBHOOK_QUEUE } from '../../jobs/queue.ts'

export const QUEUES_PATH = '/admin/queues'

/**
 * Bull Board for the job queues, admins only, when Redis is configured. It is a browser UI but
 * needs the admin's bearer token on every request (a header-injecting proxy or extension); no
 * token ever travels in a URL or a cookie.
 */
export default async function queuesUi (fastify: FastifyInstance) {
  const redis = fastify.config.redis
  if (redis === undefined) return
  const connection = bullConnection(redis.url)
  const prefix = `${redis.prefix}bull`
  const queues = [new Queue(MAINTENANCE_QUEUE, { connection, prefix }), new Queue(WEBHOOK_QUEUE, { connection, prefix })]
  for (const queue of queues) queue.on('error', (err) => fastify.log.warn({ err: err.message }, 'queue connection error'))
  // Connected before the app is ready, so closing it (even right away) never races its start-up.
  await Promise.all(queues.map((q) => q.waitUntilReady()))
  const serverAdapter = new FastifyAdapter()
  serverAdapter.setBasePath(QUEUES_PATH)
  createBullBoard({ queues: queues.map((q) => new BullMQAdapter(q)), serverAdapter })

  // A UI, not part of the API: kept out of the OpenAPI document.
  fastify.addHook('onRoute', (route) => { route.schema = { ...route.schema, hide: true } })
  // The UI loads its own scripts and styles (and sets inline style attributes, which no nonce covers).
  await fastify.register(pageHelmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: { defaultSrc: ["'self'"], imgSrc: ["'self'", 'data:'], styleSrc: ["'self'", "'unsafe-inline'"], scriptSrc: ["'self'"], frameAncestors: ["'none'"] }
    }
  })
  fastify.addHook('onRequest', fastify.authenticate)
  fastify.addHook('onRequest', fastify.requireRole('admin'))
  await fastify.register(serverAdapter.registerPlugin() as never, { prefix: QUEUES_PATH })
  fastify.addHook('onClose', async () => { await Promise.all(queues.map((q) => q.close())) })
}
