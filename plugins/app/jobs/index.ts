import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { JobContext, ScheduledJob } from './context.ts'
import { EmbeddedScheduler } from './embedded.ts'
import { JobsService } from './service.ts'

declare module 'fastify' {
  interface FastifyInstance {
    jobs: JobsService
  }
}

export interface JobsPluginOptions {
  /** The maintenance jobs and their schedule (jobs/schedule.ts, handed over by app.ts). */
  schedule: ScheduledJob[]
}

/**
 * Maintenance jobs in the API process. With Redis the jobs run in worker processes
 * (`npm run worker`); without it this process schedules them itself, one process at a time (a
 * store lease), and attempts due webhook deliveries.
 */
export default fp(async function jobsPlugin (fastify: FastifyInstance, options: JobsPluginOptions) {
  const { config } = fastify
  const context: JobContext = { store: fastify.store, cache: fastify.cache, redis: fastify.redis, clock: fastify.clock, notifier: fastify.notifier, config, log: fastify.log }
  const scheduler = fastify.redis === null && config.jobs.embedded ? new EmbeddedScheduler(context, options.schedule) : null
  fastify.decorate('jobs', new JobsService(context, options.schedule, scheduler))
  if (scheduler !== null) {
    fastify.addHook('onReady', async () => { scheduler.start() })
    fastify.addHook('onClose', async () => { await scheduler.stop() })
  }
}, { name: 'jobs', dependencies: ['config', 'store', 'cache', 'clock', 'redis', 'notifications'] })
