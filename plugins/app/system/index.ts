import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { SystemService } from './service.ts'

declare module 'fastify' {
  interface FastifyInstance {
    system: SystemService
  }
}

/** Operator reports, assembled from every other concern (so it is registered last). */
export default fp(async function systemPlugin (fastify: FastifyInstance) {
  fastify.decorate('system', new SystemService({
    config: fastify.config,
    store: fastify.store,
    clock: fastify.clock,
    redisConfigured: fastify.redis !== null,
    cache: fastify.cache,
    health: fastify.health,
    metrics: fastify.metrics,
    limiter: fastify.limiter,
    tierPolicies: fastify.tierPolicies,
    verifier: fastify.verifier,
    jobs: fastify.jobs
  }))
}, { name: 'system', dependencies: ['config', 'store', 'clock', 'redis', 'cache', 'health', 'metrics', 'rate-limit', 'verify', 'jobs'] })
