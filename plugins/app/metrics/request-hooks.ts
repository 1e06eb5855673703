import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { MetricsRegistry } from './registry.ts'
import type { MinuteWindow } from './window.ts'

/**
 * Request metrics: one onRequest and one onResponse hook, built once. Each request costs a few
 * additions and one histogram observation; slow requests are also counted and logged.
 */
export function addRequestHooks (fastify: FastifyInstance, metrics: MetricsRegistry, window: MinuteWindow, slowMs: number) {
  // One labelled child per route and status class, looked up by a string: no label hashing per request.
  const children = new Map<string, ReturnType<typeof metrics.requests.labels>>()
  const child = (method: string, route: string, status: number) => {
    const key = `${method} ${route} ${status}`
    let found = children.get(key)
    if (found === undefined) {
      found = metrics.requests.labels(method, route, `${Math.floor(status / 100)}xx`)
      children.set(key, found)
    }
    return found
  }
  fastify.addHook('onRequest', (_request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) => {
    metrics.inFlight++
    done()
  })
  fastify.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    metrics.inFlight--
    const ms = reply.elapsedTime
    const route = request.routeOptions.url ?? 'unmatched'
    const status = reply.statusCode
    child(request.method, route, status).observe(ms / 1000)
    const isSlow = ms > slowMs
    if (isSlow) {
      metrics.slowRequests.inc({ route })
      request.log.warn({ route, method: request.method, durationMs: Math.round(ms), statusCode: status }, 'slow request')
    }
    window.record(status, ms, isSlow)
    done()
  })
}
