import type { FastifyInstance } from 'fastify'
import type { Static } from 'typebox'
import type { Config } from '../../../config.ts'
import type { HistoryQuery } from '../../../schemas/system.ts'
import type { TwoLayerCache } from '../cache/cache.ts'
import type { Clock } from '../clock.ts'
import { AppError } from '../errors.ts'
import { nextRun } from '../jobs/embedded.ts'
import type { JobsService } from '../jobs/service.ts'
import type { MinuteFigures } from '../metrics/window.ts'
import type { TierName, TierPolicy } from '../rate-limit/policies.ts'
import type { TierLimiter } from '../rate-limit/tiers.ts'
import type { OpsStore, Store } from '../store/types/index.ts'
import { iso } from '../time.ts'
import type { Verifier } from '../verify/service.ts'

export interface SystemDependencies {
  config: Config
  store: Pick<Store, 'kind'> & OpsStore
  clock: Clock
  redisConfigured: boolean
  cache: TwoLayerCache
  health: FastifyInstance['health']
  metrics: FastifyInstance['metrics']
  limiter: TierLimiter
  tierPolicies: Record<TierName, TierPolicy>
  verifier: Verifier
  jobs: JobsService
}

const DAY_MS = 86_400_000

const minuteView = (m: MinuteFigures) => ({ ...m, at: iso(m.at) })

/** The operators' reports: what runs, the jobs, statistics now and over time, the rate limits. */
export class SystemService {
  constructor (private readonly deps: SystemDependencies) {}

  info () {
    const { config, store, redisConfigured } = this.deps
    return {
      name: 'keyward' as const,
      version: config.version,
      node: process.version,
      environment: config.env,
      pid: process.pid,
      uptimeSeconds: Math.round(process.uptime()),
      store: store.kind,
      redis: redisConfigured
    }
  }

  /** Each maintenance job: its schedule, next run, last run and recent failures. */
  async jobsReport () {
    const { jobs, clock, config } = this.deps
    const now = clock.now()
    const planned = jobs.scheduler?.nextRuns() ?? {}
    const report = []
    for (const { job, runs } of await jobs.recentRuns()) {
      const last = runs[0]
      report.push({
        name: job.name,
        schedule: job.pattern,
        description: job.description,
        nextRunAt: iso(planned[job.name] ?? nextRun(job.pattern, now, config.jobs.tz)),
        lastRun: last === undefined
          ? null
          : { startedAt: iso(last.startedAt), durationMs: last.durationMs, ok: last.ok, error: last.error, result: last.result },
        recentFailures: runs.filter((r) => !r.ok).length
      })
    }
    return { mode: jobs.scheduler === null ? 'worker' as const : 'embedded' as const, leader: jobs.scheduler?.leader ?? null, jobs: report }
  }

  async stats () {
    const { metrics, health, cache, limiter, verifier, clock, config } = this.deps
    const g = metrics.gauges()
    metrics.window.roll(g)
    const last = metrics.window.last(g)
    const dependencies = await health.report()
    const cached = cache.stats()
    const jobs = []
    for (const { job, runs } of await this.deps.jobs.recentRuns()) {
      jobs.push({ name: job.name, lastRunAt: runs[0] === undefined ? null : iso(runs[0].startedAt), ok: runs[0]?.ok ?? null, recentFailures: runs.filter((r) => !r.ok).length })
    }
    return {
      at: iso(clock.now()),
      process: { pid: process.pid, uptimeSeconds: Math.round(process.uptime()), node: process.version, version: config.version },
      memory: { heapUsedBytes: g.heapUsedBytes, heapLimitBytes: metrics.heapLimitBytes, rssBytes: g.rssBytes },
      eventLoop: { delayP99Ms: g.eventLoopDelayMs },
      requests: {
        inFlight: metrics.inFlight(),
        perSecond: last.requests / 60,
        lastMinute: minuteView(last),
        currentMinute: minuteView(metrics.window.live(g)),
        errorRate: last.requests === 0 ? 0 : last.errors / last.requests
      },
      cache: { l1: cached.l1, l2: cached.l2 },
      rateLimiter: { fallbackActive: limiter.usingFallback, refused: limiter.refused, blocks: limiter.blocks },
      store: dependencies.store,
      redis: { configured: dependencies.redis.configured, ok: dependencies.redis.ok },
      verifications: { ...verifier.counts },
      jobs,
      alerts: { open: metrics.alerts.open(), recent: metrics.alerts.resolved() }
    }
  }

  /** Per-minute figures (24 hours in memory) or hourly snapshots (30 days in the store). */
  async history (query: Static<typeof HistoryQuery>) {
    const { metrics, store, clock } = this.deps
    const now = clock.now()
    const resolution = query.resolution ?? 'minute'
    const to = query.to === undefined ? now : Date.parse(query.to)
    const from = query.from === undefined ? to - (resolution === 'minute' ? DAY_MS : 30 * DAY_MS) : Date.parse(query.from)
    if (!(from < to)) throw new AppError(400, 'VALIDATION_FAILED', 'querystring/from must be before to')
    metrics.window.roll(metrics.gauges())
    const hours = resolution === 'hour' ? await store.statsSnapshots(from, to, 24 * 31) : []
    return {
      resolution,
      from: iso(from),
      to: iso(to),
      minutes: resolution === 'minute' ? metrics.window.range(from, to).map(minuteView) : [],
      hours: hours.map((h) => ({ at: iso(h.at), data: h.data }))
    }
  }

  async rateLimits () {
    const { limiter, tierPolicies, config, redisConfigured } = this.deps
    return {
      store: redisConfigured ? 'redis' as const : 'memory' as const,
      fallbackActive: limiter.usingFallback,
      blockMs: config.rateLimits.blockMs,
      maxBlockMs: config.rateLimits.maxBlockMs,
      tiers: Object.values(tierPolicies),
      blocked: await limiter.blockedClients(),
      counters: { refused: limiter.refused, blocks: limiter.blocks, fallbackHits: limiter.fallbackHits }
    }
  }
}
