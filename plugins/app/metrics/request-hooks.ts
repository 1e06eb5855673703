import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction, onRequestHookHandler, onResponseHookHandler } from 'fastify'
import type { MetricsRegistry } from './registry.ts'
import type { MinuteWindow } from './window.ts'

type Hook = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void
type Series = ReturnType<MetricsRegistry['requests']['series']>

/** A route's hooks with one more: first for onRequest, last for onResponse. */
function withHook<H> (hooks: H | H[] | undefined, hook: H, first: boolean): H[] {
  const list = hooks === undefined ? [] : Array.isArray(hooks) ? hooks : [hooks]
  return first ? [hook, ...list] : [...list, hook]
}

/**
 * Request metrics: the in-flight count, one histogram observation, the minute window, and a count
 * and a log line for slow requests.
 *
 * The hooks are bound to each route as it is added (`onRoute`), with its label already known, so a
 * request reads no route options (Fastify builds that object on every read) and looks up its
 * histogram series in a per-route table. Requests that no route matched (404s, and URLs refused
 * before routing) are counted by two global hooks under the route label `unmatched`; they leave
 * routed requests to the route's own pair.
 */
export function addRequestHooks (fastify: FastifyInstance, metrics: MetricsRegistry, window: MinuteWindow, slowMs: number) {
  const started: Hook = (_request, _reply, done) => {
    metrics.inFlight++
    done()
  }

  /** The onResponse hook of one route label: histogram series per method and status class, made on first use. */
  const finished = (route: string): Hook => {
    const children = new Map<string, Array<Series | undefined>>()
    return (request, reply, done) => {
      metrics.inFlight--
      const ms = reply.elapsedTime
      const status = reply.statusCode
      const method = request.method
      let byClass = children.get(method)
      if (byClass === undefined) {
        byClass = []
        children.set(method, byClass)
      }
      const statusClass = Math.floor(status / 100)
      let series = byClass[statusClass]
      if (series === undefined) {
        series = metrics.requests.series(method, route, `${statusClass}xx`)
        byClass[statusClass] = series
      }
      metrics.requests.observe(series, ms / 1000)
      const isSlow = ms > slowMs
      if (isSlow) {
        metrics.slowRequests.inc({ route })
        request.log.warn({ route, method, durationMs: Math.round(ms), statusCode: status }, 'slow request')
      }
      window.record(status, ms, isSlow)
      done()
    }
  }

  fastify.addHook('onRoute', (route) => {
    route.onRequest = withHook(route.onRequest, started as onRequestHookHandler, true)
    route.onResponse = withHook(route.onResponse, finished(route.url) as onResponseHookHandler, false)
  })

  const unmatched = finished('unmatched')
  fastify.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    if (request.is404) started(request, reply, done)
    else done()
  })
  fastify.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    if (request.is404) unmatched(request, reply, done)
    else done()
  })
}
