import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ErrorRef } from '../../schemas/error.ts'
import { HealthBody } from '../../schemas/health.ts'

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/health', {
    schema: {
      operationId: 'getHealth',
      summary: 'Health for load balancers',
      description: '200 while the service can serve (status ok, or degraded when Redis is unreachable and memory fallbacks are in use); 503 when under pressure or the store is unreachable.',
      tags: ['system'],
      security: [],
      // Rate-limited like any route unless the caller is in RATE_LIMIT_ALLOW_CIDRS.
      response: { 200: HealthBody, 429: ErrorRef, 503: HealthBody }
    },
    // Report the pressure in the body instead of being shed by under-pressure.
    config: { pressureHandler: () => undefined }
  }, async (_request, reply) => {
    const report = await fastify.health.report()
    return reply.code(report.status === 'unavailable' ? 503 : 200).send(report)
  })
}

export default routes
