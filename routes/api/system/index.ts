import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../../../schemas/error.ts'
import { nextRun } from '../../../jobs/embedded.ts'
import { recentRuns } from '../../../jobs/runner.ts'
import { AppError } from '../../../plugins/app/errors.ts'
import type { MinuteFigures } from '../../../plugins/app/metrics/window.ts'
import { HistoryQuery, JobsReport, RateLimitReport, StatsHistory, SystemInfo, SystemStats } from '../../../schemas/system.ts'

const minuteView = (m: MinuteFigures) => ({ ...m, at: new Date(m.at).toISOString() })

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

  fastify.get('/jobs', {
    schema: {
      summary: 'Maintenance jobs: schedule, next run, last run, duration, result and failures',
      tags: ['system'],
      security: [{ bearerAuth: [] }],
      response: { 200: JobsReport, ...errorResponses(401, 403) }
    }
  }, async () => {
    const now = fastify.clock.now()
    const planned = fastify.scheduler?.nextRuns() ?? {}
    const jobs = []
    for (const { job, runs } of await recentRuns(fastify.store)) {
      const last = runs[0]
      jobs.push({
        name: job.name,
        schedule: job.pattern,
        description: job.description,
        nextRunAt: new Date(planned[job.name] ?? nextRun(job.pattern, now, fastify.config.jobs.tz)).toISOString(),
        lastRun: last === undefined
          ? null
          : { startedAt: new Date(last.startedAt).toISOString(), durationMs: last.durationMs, ok: last.ok, error: last.error, result: last.result },
        recentFailures: runs.filter((r) => !r.ok).length
      })
    }
    return { mode: fastify.scheduler === null ? 'worker' as const : 'embedded' as const, leader: fastify.scheduler?.leader ?? null, jobs }
  })

  fastify.get('/stats', {
    schema: {
      summary: 'System statistics: process, memory, event loop, requests, cache, rate limiter, store, Redis, jobs, alerts',
      tags: ['system'],
      security: [{ bearerAuth: [] }],
      response: { 200: SystemStats, ...errorResponses(401, 403) }
    }
  }, async () => {
    const { metrics } = fastify
    const g = metrics.gauges()
    metrics.window.roll(g)
    const last = metrics.window.last(g)
    const health = await fastify.health.report()
    const cache = fastify.cache.stats()
    const jobs = []
    for (const { job, runs } of await recentRuns(fastify.store)) {
      jobs.push({ name: job.name, lastRunAt: runs[0] === undefined ? null : new Date(runs[0].startedAt).toISOString(), ok: runs[0]?.ok ?? null, recentFailures: runs.filter((r) => !r.ok).length })
    }
    return {
      at: new Date(fastify.clock.now()).toISOString(),
      process: { pid: process.pid, uptimeSeconds: Math.round(process.uptime()), node: process.version, version: fastify.config.version },
      memory: { heapUsedBytes: g.heapUsedBytes, heapLimitBytes: metrics.heapLimitBytes, rssBytes: g.rssBytes },
      eventLoop: { delayP99Ms: g.eventLoopDelayMs },
      requests: {
        inFlight: metrics.inFlight(),
        perSecond: last.requests / 60,
        lastMinute: minuteView(last),
        currentMinute: minuteView(metrics.window.live(g)),
        errorRate: last.requests === 0 ? 0 : last.errors / last.requests
      },
      cache: { l1: cache.l1, l2: cache.l2 },
      rateLimiter: { fallbackActive: fastify.limiter.usingFallback, refused: fastify.limiter.refused, blocks: fastify.limiter.blocks },
      store: health.store,
      redis: { configured: health.redis.configured, ok: health.redis.ok },
      verifications: { ...fastify.verifier.counts },
      jobs,
      alerts: { open: metrics.alerts.open(), recent: metrics.alerts.resolved() }
    }
  })

  fastify.get('/stats/history', {
    schema: {
      summary: 'Statistics over time',
      description: 'Per-minute figures kept in memory for 24 hours; hourly snapshots (the stats-report job) kept 30 days.',
      tags: ['system'],
      security: [{ bearerAuth: [] }],
      querystring: HistoryQuery,
      response: { 200: StatsHistory, ...errorResponses(400, 401, 403) }
    }
  }, async (request) => {
    const now = fastify.clock.now()
    const resolution = request.query.resolution ?? 'minute'
    const to = request.query.to === undefined ? now : Date.parse(request.query.to)
    const from = request.query.from === undefined ? to - (resolution === 'minute' ? 86_400_000 : 30 * 86_400_000) : Date.parse(request.query.from)
    if (!(from < to)) throw new AppError(400, 'VALIDATION_FAILED', 'querystring/from must be before to')
    fastify.metrics.window.roll(fastify.metrics.gauges())
    const hours = resolution === 'hour' ? await fastify.store.statsSnapshots(from, to, 24 * 31) : []
    return {
      resolution,
      from: new Date(from).toISOString(),
      to: new Date(to).toISOString(),
      minutes: resolution === 'minute' ? fastify.metrics.window.range(from, to).map(minuteView) : [],
      hours: hours.map((h) => ({ at: new Date(h.at).toISOString(), data: h.data }))
    }
  })

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
