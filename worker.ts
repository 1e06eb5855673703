import { Queue } from 'bullmq'
import closeWithGrace from 'close-with-grace'
import { configOrExit, exitIfConfigError, type Config } from './config.ts'
import type { JobContext } from './plugins/app/jobs/context.ts'
import { bullConnection, MAINTENANCE_QUEUE, queueDelivery, requeueDue, startWorkers, upsertSchedules, WEBHOOK_QUEUE } from './jobs/queue.ts'
import { openJobContext } from './jobs/standalone.ts'

interface JobsProcess {
  log: JobContext['log']
  /** Lets running jobs finish, then closes the queues, the store and Redis. */
  stop (): Promise<void>
}

/**
 * Closes each part in order. Running jobs finish inside the workers' close; a connection that
 * fails to close after that loses nothing, so it is logged rather than turned into a failed exit.
 */
async function closeInOrder (log: JobContext['log'], steps: Array<[string, () => Promise<unknown>]>) {
  for (const [name, close] of steps) {
    try {
      await close()
    } catch (err) {
      log.warn({ err, step: name }, 'worker shutdown step failed')
    }
  }
}

/** Opens the store and Redis, keeps the schedules in the queue and starts the BullMQ workers. */
async function startJobs (config: Config, redis: NonNullable<Config['redis']>): Promise<JobsProcess> {
  const connection = bullConnection(redis.url)
  const prefix = `${redis.prefix}bull`
  let webhooks: Queue | null = null
  const { ctx, close } = await openJobContext(config, { onQueued: async (d) => { if (webhooks !== null) await queueDelivery(webhooks, d) } })
  const maintenance = new Queue(MAINTENANCE_QUEUE, { connection, prefix })
  const deliveries = new Queue(WEBHOOK_QUEUE, { connection, prefix })
  webhooks = deliveries
  await upsertSchedules(maintenance, config.jobs.tz)
  const workers = startWorkers(ctx, connection, prefix)
  // Deliveries the store holds but the queue lost (Redis gone when they were queued) are queued
  // again at start and every minute.
  const sweep = () => {
    requeueDue(ctx.store, deliveries, ctx.clock.now())
      .catch((err) => ctx.log.warn({ err: (err as Error).message }, 'could not re-queue due webhook deliveries'))
  }
  sweep()
  const sweeper = setInterval(sweep, 60_000).unref()
  return {
    log: ctx.log,
    stop: async () => {
      clearInterval(sweeper)
      await closeInOrder(ctx.log, [
        ['workers', () => workers.close()],
        ['maintenance queue', () => maintenance.close()],
        ['webhook queue', () => deliveries.close()],
        ['store and redis', () => close()]
      ])
    }
  }
}

/**
 * The jobs process (`npm run worker`): BullMQ workers for the maintenance schedule and webhook
 * deliveries. Any number may run; each scheduled tick is one job, processed once. Needs Redis.
 */
async function main () {
  const config = configOrExit()
  if (config.redis === undefined) {
    console.error('The worker needs REDIS_URL; without Redis the API process runs the jobs itself (embedded mode).')
    process.exit(78)
  }
  const started = startJobs(config, config.redis)
  // A configuration error found while starting (a standalone MongoDB) is one line and exit 78.
  started.catch(exitIfConfigError)
  let stopping = false
  // Installed while start-up runs: a signal then is honoured once start-up has finished.
  // Unhandled rejections are handled below, since some are expected while stopping.
  closeWithGrace({ delay: config.http.shutdownTimeoutMs + 20_000, skip: ['unhandledRejection'] }, async ({ signal, err }) => {
    stopping = true
    const jobs = await started
    if (err !== undefined) jobs.log.error({ err }, 'worker stopping after an uncaught error')
    else jobs.log.info({ signal }, 'worker stopping: letting running jobs finish')
    await jobs.stop()
  })
  const jobs = await started
  // While stopping, connections closing under BullMQ can reject promises nobody awaits any more
  // ("Connection is closed"): nothing is lost then, so they must not turn a clean stop into exit 1.
  process.on('unhandledRejection', (reason) => {
    if (stopping) {
      jobs.log.warn({ err: (reason as Error)?.message }, 'ignored during shutdown')
      return
    }
    jobs.log.error({ err: reason }, 'unhandled rejection')
    process.exit(1)
  })
  jobs.log.info({ concurrency: config.jobs.concurrency, tz: config.jobs.tz }, 'worker ready')
  if (typeof process.send === 'function') process.send('ready')
}

await main()
