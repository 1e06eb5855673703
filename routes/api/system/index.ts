import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../../../schemas/error.ts'
import { HistoryQuery, JobsReport, RateLimitReport, StatsHistory, SystemInfo, SystemStats } from '../../../schemas/system.ts'

/** Operator routes: admin only. */
const system: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.addHook('onRequest', fastify.authenticate)
  fastify.addHook('preHandler', fastify.requireRole('admin'))
  const tags = ['system']
  const security = [{ bearerAuth: [] }]

  fastify.get('/info', {
    schema: {
      operationId: 'getSystemInfo',
      summary: 'What is running: version, runtime, store and Redis',
      tags,
      security,
      response: { 200: SystemInfo, ...errorResponses(401, 403) }
    }
  }, async () => fastify.system.info())

  fastify.get('/jobs', {
    schema: {
      operationId: 'listJobs',
      summary: 'Maintenance jobs: schedule, next run, last run, duration, result and failures',
      tags,
      security,
      response: { 200: JobsReport, ...errorResponses(401, 403) }
    }
  }, async () => fastify.system.jobsReport())

  fastify.get('/stats', {
    schema: {
      operationId: 'getSystemStats',
      summary: 'System statistics: process, memory, event loop, requests, cache, rate limiter, store, Redis, jobs, alerts',
      tags,
      security,
      response: { 200: SystemStats, ...errorResponses(401, 403) }
    }
  }, async () => fastify.system.stats())

  fastify.get('/stats/history', {
    schema: {
      operationId: 'getSystemStatsHistory',
      summary: 'Statistics over time',
      description: 'Per-minute figures kept in memory for 24 hours; hourly snapshots (the stats-report job) kept 30 days.',
      tags,
      security,
      querystring: HistoryQuery,
      response: { 200: StatsHistory, ...errorResponses(400, 401, 403) }
    }
  }, async (request) => fastify.system.history(request.query))

  fastify.get('/rate-limits', {
    schema: {
      operationId: 'getRateLimits',
      summary: 'Rate-limit tiers in force, blocked clients, and whether the memory fallback is active',
      tags,
      security,
      response: { 200: RateLimitReport, ...errorResponses(401, 403) }
    }
  }, async () => fastify.system.rateLimits())
}

export default system
