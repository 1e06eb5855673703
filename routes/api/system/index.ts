import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../../../schemas/error.ts'
import { nextRun } from '../../../jobs/embedded.ts'
import { SCHEDULE } from '../../../jobs/schedule.ts'
import { JobsReport, RateLimitReport, SystemInfo } from '../../../schemas/system.ts'

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
    for (const job of SCHEDULE) {
      const runs = await fastify.store.jobRuns(job.name, 20)
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
