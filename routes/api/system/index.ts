import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../../../schemas/error.ts'
import { SystemInfo } from '../../../schemas/system.ts'

/** Operator routes: admin only. */
const system: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.addHook('onRequest', fastify.authenticate)
  fastify.addHook('preHandler', fastify.requireRole('admin'))

  fastify.get('/info', {
    schema: {
      summary: 'What is running: version, runtime, store and Redis',
      tags: ['system'],
      security: [{ bearerAuth: [] }],
      response: { 200: SystemInfo, ...errorResponses(401, 403) }
    }
  }, async () => ({
    name: 'keyward' as const,
    version: fastify.config.version,
    node: process.version,
    environment: fastify.config.env,
    pid: process.pid,
    uptimeSeconds: Math.round(process.uptime()),
    store: fastify.store.kind,
    redis: fastify.redis !== null
  }))
}

export default system
