import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../../../schemas/error.ts'
import { RateLimitReport, SystemInfo } from '../../../schemas/system.ts'

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

  fastify.get('/rate-limits', {
    schema: {
      summary: 'Rate-limit tiers in force, blocked clients, and whether the memory fallback is active',
      tags: ['system'],
      security: [{ bearerAuth: [] }],
      response: { 200: RateLimitReport, ...errorResponses(401, 403) }
    }
  }, async () => {
    const { limiter, tierPolicies, config } = fastify
    return {
      store: fastify.redis === null ? 'memory' as const : 'redis' as const,
      fallbackActive: limiter.usingFallback,
      blockMs: config.rateLimits.blockMs,
      maxBlockMs: config.rateLimits.maxBlockMs,
      tiers: Object.values(tierPolicies),
      blocked: await limiter.blockedClients(),
      counters: { refused: limiter.refused, blocks: limiter.blocks, fallbackHits: limiter.fallbackHits }
    }
  })
}

export default system
