import underPressure from '@fastify/under-pressure'
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import fp from 'fastify-plugin'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** false: the route is never shed and reports the pressure itself (/api/health). */
    shedUnderPressure?: boolean
  }
}

const RETRY_AFTER_S = 10
/** One error for every shed request, as the library's own: the error handler answers it in the one shape (503 SERVICE_UNAVAILABLE). */
const SHED = Object.assign(new Error('Service Unavailable'), { statusCode: 503, code: 'FST_UNDER_PRESSURE' })

/**
 * Load shedding: past any configured limit every route answers 503 (in the one error shape,
 * through the error handler) until the process recovers. /api/health reports instead of shedding.
 *
 * @fastify/under-pressure samples the process and decorates `isUnderPressure()` and `memoryUsage()`.
 * Its own onRequest hook reads the route's options on every request (Fastify builds that object per
 * read) to find a per-route handler, so the plugin is registered in a context of its own, where its
 * hook covers no route, and the hook here reads them only when there is something to shed.
 */
export default fp(async function underPressurePlugin (fastify: FastifyInstance) {
  const p = fastify.config.pressure
  let sampler: Pick<FastifyInstance, 'isUnderPressure' | 'memoryUsage'> | undefined
  await fastify.register(async function sampling (child) {
    await child.register(underPressure, {
      maxEventLoopDelay: p.maxEventLoopDelay,
      maxEventLoopUtilization: p.maxEventLoopUtilization,
      maxHeapUsedBytes: p.maxHeapUsedBytes,
      maxRssBytes: p.maxRssBytes,
      retryAfter: RETRY_AFTER_S
    })
    sampler = child
  })
  const { isUnderPressure, memoryUsage } = sampler as NonNullable<typeof sampler>
  fastify.decorate('isUnderPressure', isUnderPressure)
  fastify.decorate('memoryUsage', memoryUsage)

  // A global hook sheds before any other work (authentication included); the route's options are
  // read only when the process is under pressure, to spare the routes that report instead.
  fastify.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    if (!isUnderPressure() || request.routeOptions.config?.shedUnderPressure === false) return done()
    reply.header('retry-after', RETRY_AFTER_S)
    done(SHED)
  })
}, { name: 'under-pressure', dependencies: ['config'] })
