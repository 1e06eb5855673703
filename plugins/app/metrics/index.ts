import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Registry } from 'prom-client'
import type { AlertEngine } from './alerts.ts'
import { startAlerting } from './alerting.ts'
import { inKeywardCluster, serviceMetricsText } from './cluster-metrics.ts'
import { listenMetrics, metricsHandler, metricsListener, metricsStartupLine } from './listener.ts'
import { ProcessGauges } from './process-gauges.ts'
import type { MetricsRegistry } from './registry.ts'
import { addRequestHooks } from './request-hooks.ts'
import { MinuteWindow, type Gauges } from './window.ts'

declare module 'fastify' {
  interface FastifyInstance {
    metrics: {
      registry: Registry
      window: MinuteWindow
      alerts: AlertEngine
      gauges (): Gauges
      /** Text in the Prometheus exposition format. */
      text (): Promise<string>
      inFlight (): number
      heapLimitBytes: number
    }
  }
}

export interface MetricsPluginOptions {
  /** The app's instruments, built before the store so that it can report its operations there. */
  registry: MetricsRegistry
}

/**
 * Where /metrics is served: on METRICS_PORT (loopback unless METRICS_HOST says otherwise), else
 * on the API port behind METRICS_TOKEN, else nowhere; and the start-up line that says which.
 */
function exposeMetrics (fastify: FastifyInstance, contentType: string, text: () => Promise<string>) {
  const { metrics } = fastify.config
  if (metrics.port !== 0) {
    const server = metricsListener({ token: metrics.token, contentType, text })
    fastify.addHook('onReady', async () => { await listenMetrics(server, metrics.host, metrics.port) })
    fastify.addHook('onClose', async () => { await server.close() })
  } else if (metrics.token !== undefined) {
    fastify.get('/metrics', { schema: { hide: true }, onRequest: fastify.allowListed, config: { rateLimit: false } }, metricsHandler({ token: metrics.token, contentType, text }))
  }
  // Under the cluster the primary serves METRICS_PORT and says so; a worker speaks only for its own /metrics.
  if (!inKeywardCluster() || metrics.token !== undefined) {
    const { level, line } = metricsStartupLine(metrics)
    fastify.addHook('onReady', async () => { fastify.log[level](line) })
  }
}

/**
 * Metrics (prom-client), per-minute statistics and alerting. Request metrics cost one onRequest
 * and one onResponse hook; everything else is read when /metrics or the stats are asked for.
 */
export default fp<MetricsPluginOptions>(async function metricsPlugin (fastify, { registry: metrics }) {
  const { config } = fastify
  metrics.addServiceGauges(fastify)
  const gauges = new ProcessGauges(fastify.cache)
  const window = new MinuteWindow(() => fastify.clock.now())
  if (config.metrics.enabled) addRequestHooks(fastify, metrics, window, config.metrics.slowRequestMs)
  const alerts = startAlerting(fastify, metrics, window, gauges)
  const text = serviceMetricsText(metrics.registry)
  fastify.decorate('metrics', {
    registry: metrics.registry,
    window,
    alerts,
    gauges: () => gauges.read(),
    text,
    inFlight: () => metrics.inFlight,
    heapLimitBytes: gauges.heapLimitBytes
  })
  exposeMetrics(fastify, metrics.registry.contentType, text)
  fastify.addHook('onClose', async () => { gauges.stop() })
}, { name: 'metrics', dependencies: ['config', 'store', 'cache', 'clock', 'redis', 'health', 'rate-limit', 'verify', 'jobs'] })
