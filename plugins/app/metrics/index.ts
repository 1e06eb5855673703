import { monitorEventLoopDelay, performance as perf } from 'node:perf_hooks'
import { hkdfSync } from 'node:crypto'
import { getHeapStatistics } from 'node:v8'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import cluster from 'node:cluster'
import { AggregatorRegistry, collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import { recentRuns } from '../../../jobs/runner.ts'
import { unauthorized } from '../errors.ts'
import { deliver } from '../notifications/webhooks.ts'
import { AlertEngine, defaultRules, type AlertState } from './alerts.ts'
import { bearerMatches, listenMetrics, METRICS_TOKEN_REQUIRED, metricsListener, metricsStartupLine } from './listener.ts'
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

const STORE_TIMED = new Set(['getUser', 'findUserByEmail', 'getSession', 'getKey', 'listKeys', 'updateKey', 'createKey', 'findVersionByHash',
  'findCredentialByHash', 'recordUsage', 'monthlyUsage', 'appendAudit', 'keyStats', 'ping'])

/**
 * Metrics (prom-client), per-minute statistics and alerting. Request metrics cost one onRequest
 * and one onResponse hook; everything else is read when /metrics or the stats are asked for.
 * Label values are route patterns, never URLs, so no key or email can reach a metric.
 */
export default fp(async function metricsPlugin (fastify: FastifyInstance) {
  const { config } = fastify
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'keyward_' })
  const heapLimitBytes = getHeapStatistics().heap_size_limit
  const eld = monitorEventLoopDelay({ resolution: 20 })
  eld.enable()
  let lastElu = perf.eventLoopUtilization()

  const requests = new Histogram({
    name: 'keyward_http_request_duration_seconds',
    help: 'Request duration by route and status class (its _count is the request count)',
    labelNames: ['method', 'route', 'status_class'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry]
  })
  const slow = new Counter({ name: 'keyward_http_slow_requests_total', help: `Requests slower than ${config.metrics.slowRequestMs} ms`, labelNames: ['route'], registers: [registry] })
  let inFlight = 0
  new Gauge({ name: 'keyward_http_requests_in_flight', help: 'Requests being handled', registers: [registry], collect () { this.set(inFlight) } }) // eslint-disable-line no-new
  new Gauge({ // eslint-disable-line no-new
    name: 'keyward_event_loop_utilization',
    help: 'Event-loop utilisation since the last scrape',
    registers: [registry],
    collect () {
      const now = perf.eventLoopUtilization()
      this.set(perf.eventLoopUtilization(now, lastElu).utilization)
      lastElu = now
    }
  })
  new Gauge({ name: 'keyward_redis_up', help: '1 when Redis is configured and answering', registers: [registry], collect () { this.set(fastify.redis?.status === 'ready' ? 1 : 0) } }) // eslint-disable-line no-new
  new Gauge({ // eslint-disable-line no-new
    name: 'keyward_cache_requests_total',
    help: 'Cache hits and misses per layer',
    labelNames: ['layer', 'result'],
    registers: [registry],
    collect () {
      const s = fastify.cache.stats()
      this.set({ layer: 'l1', result: 'hit' }, s.l1.hits)
      this.set({ layer: 'l1', result: 'miss' }, s.l1.misses)
      this.set({ layer: 'l2', result: 'hit' }, s.l2.hits)
      this.set({ layer: 'l2', result: 'miss' }, s.l2.misses)
    }
  })
  new Gauge({ // eslint-disable-line no-new
    name: 'keyward_rate_limit_total',
    help: 'Rate-limit refusals, blocks started, and hits decided from memory while Redis was down',
    labelNames: ['event'],
    registers: [registry],
    collect () {
      this.set({ event: 'refused' }, fastify.limiter.refused)
      this.set({ event: 'blocked' }, fastify.limiter.blocks)
      this.set({ event: 'fallback' }, fastify.limiter.fallbackHits)
    }
  })
  new Gauge({ // eslint-disable-line no-new
    name: 'keyward_verifications_total',
    help: 'Verification answers by code',
    labelNames: ['code'],
    registers: [registry],
    collect () { for (const [code, n] of Object.entries(fastify.verifier.counts)) this.set({ code }, n) }
  })
  const jobsGauge = new Gauge({
    name: 'keyward_job_runs',
    help: 'Recent runs of each maintenance job (last 20) by outcome',
    labelNames: ['job', 'outcome'],
    registers: [registry],
    async collect () {
      for (const { job, runs } of await recentRuns(fastify.store)) {
        jobsGauge.set({ job: job.name, outcome: 'ok' }, runs.filter((r) => r.ok).length)
        jobsGauge.set({ job: job.name, outcome: 'failed' }, runs.filter((r) => !r.ok).length)
      }
    }
  })
  let backlog = 0
  new Gauge({ // eslint-disable-line no-new
    name: 'keyward_queue_backlog',
    help: 'Jobs and webhook deliveries waiting',
    registers: [registry],
    async collect () {
      backlog = (await fastify.store.systemCounts(fastify.clock.now())).pendingDeliveries
      this.set(backlog)
    }
  })
  const alertsCounter = new Counter({ name: 'keyward_alerts_total', help: 'Alert transitions', labelNames: ['alert', 'status'], registers: [registry] })
  const storeLatency = new Histogram({
    name: 'keyward_store_operation_duration_seconds',
    help: 'Store operation latency',
    labelNames: ['operation'],
    buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1],
    registers: [registry]
  })

  // Store operations are timed by wrapping the instance's methods (every service holds the same object).
  const store = fastify.store as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>
  for (const name of STORE_TIMED) {
    const original = (store[name] as (...args: unknown[]) => Promise<unknown>).bind(fastify.store)
    store[name] = (...args: unknown[]) => {
      const end = storeLatency.startTimer({ operation: name })
      return original(...args).finally(() => end())
    }
  }

  const window = new MinuteWindow(() => fastify.clock.now())
  const gauges = (): Gauges => {
    const memory = process.memoryUsage()
    const cache = fastify.cache.stats()
    const lookups = cache.l1.hits + cache.l1.misses
    return {
      eventLoopDelayMs: eld.count > 0 ? eld.percentile(99) / 1e6 : 0,
      heapUsedBytes: memory.heapUsed,
      rssBytes: memory.rss,
      cacheHitRatio: lookups === 0 ? null : cache.l1.hits / lookups,
      jobRuns: 0,
      jobFailures: 0
    }
  }

  const slowMs = config.metrics.slowRequestMs
  // One labelled child per route and status class, looked up by a string: no label hashing per request.
  const children = new Map<string, ReturnType<typeof requests.labels>>()
  const child = (method: string, route: string, status: number) => {
    const key = `${method} ${route} ${status}`
    let found = children.get(key)
    if (found === undefined) {
      found = requests.labels(method, route, `${Math.floor(status / 100)}xx`)
      children.set(key, found)
    }
    return found
  }
  if (config.metrics.enabled) {
    fastify.addHook('onRequest', (_request, _reply, done) => {
      inFlight++
      done()
    })
    fastify.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done) => {
      inFlight--
      const ms = reply.elapsedTime
      const route = request.routeOptions.url ?? 'unmatched'
      const status = reply.statusCode
      child(request.method, route, status).observe(ms / 1000)
      const isSlow = ms > slowMs
      if (isSlow) {
        slow.inc({ route })
        request.log.warn({ route, method: request.method, durationMs: Math.round(ms), statusCode: status }, 'slow request')
      }
      window.record(status, ms, isSlow)
      done()
    })
  }

  const alertKey = Buffer.from(hkdfSync('sha256', config.keys.hashSecret, 'keyward', 'alert-webhooks', 32)).toString('base64url')
  const sendAlert = (alert: AlertState) => {
    if (config.alerts.webhookUrl === undefined) return
    const body = JSON.stringify({ type: 'alert', ...alert })
    deliver(config.alerts.webhookUrl, body, config.alerts.webhookSecret ?? alertKey, {
      allowPrivate: config.webhooks.allowPrivate, timeoutMs: config.webhooks.timeoutMs, eventId: `alert:${alert.name}:${alert.status}:${alert.since}`
    }).catch((err) => fastify.log.warn({ err: (err as Error).message, alert: alert.name }, 'alert webhook failed'))
  }
  const alerts = new AlertEngine(defaultRules(config.alerts.thresholds), fastify.clock, config.alerts.thresholds.holdMs, (alert) => {
    alertsCounter.inc({ alert: alert.name, status: alert.status })
    const log = alert.status === 'firing' ? fastify.log.error.bind(fastify.log) : fastify.log.warn.bind(fastify.log)
    log({ alert }, alert.status === 'firing' ? `alert raised: ${alert.name}` : `alert resolved: ${alert.name}`)
    sendAlert(alert)
  })

  async function evaluate () {
    const g = gauges()
    window.roll(g)
    const last = window.last(g)
    const health = await fastify.health.report()
    alerts.evaluate({
      requests: last.requests,
      errors: last.errors,
      p99Ms: last.p99Ms,
      eventLoopDelayMs: g.eventLoopDelayMs,
      heapUsedBytes: g.heapUsedBytes,
      heapLimitBytes,
      redisConfigured: fastify.redis !== null,
      redisReady: fastify.redis?.status === 'ready',
      storeOk: health.store.ok,
      queueBacklog: backlog
    })
    eld.reset()
  }
  const timer = setInterval(() => { evaluate().catch((err) => fastify.log.error({ err }, 'alert evaluation failed')) }, 10_000)
  timer.unref()

  // Under the cluster, the primary adds up every worker's registry (prom-client's aggregator).
  // Only under Keyward's own primary (cluster.ts); PM2's cluster mode has no aggregator to ask.
  const inCluster = cluster.isWorker && process.env.KEYWARD_CLUSTER_WORKER === '1'
  if (inCluster) {
    // Constructing an aggregator is what installs prom-client's worker-side IPC listener.
    new AggregatorRegistry() // eslint-disable-line no-new
    AggregatorRegistry.setRegistries([registry])
  }
  let nextRequest = 0
  const pendingTexts = new Map<number, (result: { text?: string, error?: string }) => void>()
  if (inCluster) {
    process.on('message', (message: { type?: string, id?: number, text?: string, error?: string }) => {
      if (message?.type !== 'keyward:metrics' || message.id === undefined) return
      pendingTexts.get(message.id)?.(message)
      pendingTexts.delete(message.id)
    })
  }
  /** The whole service's metrics: this process's, or under the cluster every worker's, from the primary. */
  const serviceText = (): Promise<string> => {
    if (!inCluster || typeof process.send !== 'function') return registry.metrics()
    const id = ++nextRequest
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { pendingTexts.delete(id); reject(new Error('the cluster primary did not answer')) }, 5000)
      pendingTexts.set(id, (result) => {
        clearTimeout(timer)
        if (result.text !== undefined) resolve(result.text)
        else reject(new Error(result.error ?? 'aggregation failed'))
      })
      process.send?.({ type: 'keyward:metrics', id })
    })
  }

  fastify.decorate('metrics', { registry, window, alerts, gauges, text: serviceText, inFlight: () => inFlight, heapLimitBytes })

  let metricsServer: ReturnType<typeof metricsListener> | null = null
  if (config.metrics.port !== 0) {
    // On its own port (loopback unless METRICS_HOST says otherwise) instead of the API's.
    const server = metricsListener({ token: config.metrics.token, contentType: registry.contentType, text: serviceText })
    metricsServer = server
    fastify.addHook('onReady', async () => { await listenMetrics(server, config.metrics.host, config.metrics.port) })
  } else if (config.metrics.token !== undefined) {
    const token = config.metrics.token
    fastify.get('/metrics', { schema: { hide: true } }, async (request, reply) => {
      if (!bearerMatches(request.headers.authorization, token)) throw unauthorized(METRICS_TOKEN_REQUIRED)
      return reply.type(registry.contentType).send(await serviceText())
    })
  }
  // Under the cluster the primary serves METRICS_PORT and says so; a worker speaks only for its own /metrics.
  if (!inCluster || config.metrics.token !== undefined) {
    const { level, line } = metricsStartupLine(config.metrics)
    fastify.addHook('onReady', async () => { fastify.log[level](line) })
  }
  fastify.addHook('onClose', async () => {
    clearInterval(timer)
    eld.disable()
    await metricsServer?.close()
  })
}, { name: 'metrics', dependencies: ['config', 'store', 'cache', 'clock', 'redis', 'health', 'rate-limit', 'verify'] })
