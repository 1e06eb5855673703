import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply } from 'fastify'
import { ErrorRef } from '../../schemas/error.ts'
import { HealthBody, type HealthBodyType } from '../../schemas/health.ts'

/** 503 takes the instance out of a load balancer's rotation. */
function answer (reply: FastifyReply, report: HealthBodyType): HealthBodyType {
  reply.code(report.status === 'unavailable' ? 503 : 200)
  return report
}

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/health', {
    schema: {
      operationId: 'getHealth',
      summary: 'Health for load balancers',
      description: '200 while the service can serve (status ok, or degraded when Redis is unreachable and memory fallbacks are in use); 503 when under pressure or the store is unreachable.',
      tags: ['system'],
      security: [],
      response: { 200: HealthBody, 429: ErrorRef, 503: HealthBody }
    },
    // The general tier, except for callers in RATE_LIMIT_ALLOW_CIDRS (load balancers, probes).
    onRequest: fastify.allowListed,
    config: {
      // Report the pressure in the body instead of being shed.
      shedUnderPressure: false,
      rateLimit: false
    }
  }, (_request, reply) => {
    const report = fastify.health.report()
    return report instanceof Promise ? report.then((r) => answer(reply, r)) : answer(reply, report)
  })
}

export default routes
