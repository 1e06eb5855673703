import { performance as perf } from 'node:perf_hooks'
import type { FastifyInstance } from 'fastify'
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { OperationObserver, TimedStoreOperation } from '../store/timed.ts'
import { RequestDurations } from './request-durations.ts'

/**
 * Keyward's prom-client instruments, in a registry of their own (each app has one). Built before
 * the store, which reports its operations' latency here; label values are route patterns and
 * operation names, never URLs, so no key or email can reach a metric.
 */
export class MetricsRegistry {
  readonly registry = new Registry()
  /** Requests being handled: moved by the request hooks, read at scrape. */
  inFlight = 0
  /** Jobs and webhook deliveries waiting, as of the last scrape (an alert rule reads it). */
  queueBacklog = 0
  readonly requests: RequestDurations
  readonly slowRequests: Counter<'route'>
  readonly alertTransitions: Counter<'alert' | 'status'>
  private readonly storeOperations: Histogram<'operation'>

  constructor (slowRequestMs: number) {
    const registers = [this.registry]
    collectDefaultMetrics({ register: this.registry, prefix: 'keyward_' })
    this.requests = new RequestDurations([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], this.registry)
    this.slowRequests = new Counter({ name: 'keyward_http_slow_requests_total', help: `Requests slower than ${slowRequestMs} ms`, labelNames: ['route'], registers })
    this.alertTransitions = new Counter({ name: 'keyward_alerts_total', help: 'Alert transitions', labelNames: ['alert', 'status'], registers })
    this.storeOperations = new Histogram({
      name: 'keyward_store_operation_duration_seconds',
      help: 'Store operation latency',
      labelNames: ['operation'],
      buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1],
      registers
    })
    const self = this
    new Gauge({ name: 'keyward_http_requests_in_flight', help: 'Requests being handled', registers, collect () { this.set(self.inFlight) } }) // eslint-disable-line no-new
    let lastElu = perf.eventLoopUtilization()
    new Gauge({ // eslint-disable-line no-new
      name: 'keyward_event_loop_utilization',
      help: 'Event-loop utilisation since the last scrape',
      registers,
      collect () {
        const now = perf.eventLoopUtilization()
        this.set(perf.eventLoopUtilization(now, lastElu).utilization)
        lastElu = now
      }
    })
  }

  /** Where the timed store reports: one labelled child per operation, looked up once. */
  readonly storeObserver: OperationObserver<TimedStoreOperation> = (operation) => {
    const child = this.storeOperations.labels(operation)
    return (seconds) => child.observe(seconds)
  }

  /** Gauges read from the other concerns' services at scrape time. */
  addServiceGauges (fastify: Pick<FastifyInstance, 'redis' | 'cache' | 'limiter' | 'verifier' | 'jobs' | 'store' | 'clock'>) {
    const registers = [this.registry]
    const self = this
    new Gauge({ name: 'keyward_redis_up', help: '1 when Redis is configured and answering', registers, collect () { this.set(fastify.redis?.status === 'ready' ? 1 : 0) } }) // eslint-disable-line no-new
    new Gauge({ // eslint-disable-line no-new
      name: 'keyward_cache_requests_total',
      help: 'Cache hits and misses per layer',
      labelNames: ['layer', 'result'],
      registers,
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
      registers,
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
      registers,
      collect () { for (const [code, n] of Object.entries(fastify.verifier.counts)) this.set({ code }, n) }
    })
    new Gauge({ // eslint-disable-line no-new
      name: 'keyward_job_runs',
      help: 'Recent runs of each maintenance job (last 20) by outcome',
      labelNames: ['job', 'outcome'],
      registers,
      async collect () {
        for (const { job, runs } of await fastify.jobs.recentRuns()) {
          this.set({ job: job.name, outcome: 'ok' }, runs.filter((r) => r.ok).length)
          this.set({ job: job.name, outcome: 'failed' }, runs.filter((r) => !r.ok).length)
        }
      }
    })
    new Gauge({ // eslint-disable-line no-new
      name: 'keyward_queue_backlog',
      help: 'Jobs and webhook deliveries waiting',
      registers,
      async collect () {
        self.queueBacklog = (await fastify.store.systemCounts(fastify.clock.now())).pendingDeliveries
        this.set(self.queueBacklog)
      }
    })
  }
}
