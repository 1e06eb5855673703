import underPressure from '@fastify/under-pressure'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/**
 * Load shedding: past any configured limit every route answers 503 (in the one error shape,
 * through the error handler) until the process recovers. /api/health reports instead of shedding.
 */
export default fp(async function underPressurePlugin (fastify: FastifyInstance) {
  const p = fastify.config.pressure
  await fastify.register(underPressure, {
    maxEventLoopDelay: p.maxEventLoopDelay,
    maxEventLoopUtilization: p.maxEventLoopUtilization,
    maxHeapUsedBytes: p.maxHeapUsedBytes,
    maxRssBytes: p.maxRssBytes,
    retryAfter: 10
  })
}, { name: 'under-pressure', dependencies: ['config'] })
