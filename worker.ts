import { Queue } from 'bullmq'
import { configOrExit } from './config.ts'
import { bullConnection, MAINTENANCE_QUEUE, queueDelivery, requeueDue, startWorkers, upsertSchedules, WEBHOOK_QUEUE } from './jobs/queue.ts'
import { openJobContext } from './jobs/standalone.ts'

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
  const connection = bullConnection(config.redis.url)
  const prefix = `${config.redis.prefix}bull`
  const shutdownBound = config.http.shutdownTimeoutMs + 20_000
  let stop: ((signal: string) => Promise<void>) | null = null
  let early: string | null = null
  // Handlers first: a signal during start-up is honoured once start-up has finished.
  const onSignal = (signal: string) => {
    if (stop === null) early = signal
    else stop(signal).catch(() => process.exit(1))
  }
  process.on('SIGTERM', () => onSignal('SIGTERM'))
  process.on('SIGINT', () => onSignal('SIGINT'))

  let webhooks: Queue | null = null
  const { ctx, close } = await openJobContext(config, { onQueued: async (d) => { if (webhooks !== null) await queueDelivery(webhooks, d) } })
  const maintenance = new Queue(MAINTENANCE_QUEUE, { connection, prefix })
  webhooks = new Queue(WEBHOOK_QUEUE, { connection, prefix })
  await upsertSchedules(maintenance, config.jobs.tz)
  const workers = startWorkers(ctx, connection, prefix)
  // Deliveries the store holds but the queue lost (Redis gone when they were queued) are queued
  // again at start and every minute.
  const sweep = () => {
    requeueDue(ctx.store, webhooks as Queue, ctx.clock.now())
      .catch((err) => ctx.log.warn({ err: (err as Error).message }, 'could not re-queue due webhook deliveries'))
  }
  sweep()
  const sweeper = setInterval(sweep, 60_000).unref()

  let stopping = false
  // While stopping, connections closing under BullMQ can reject promises nobody awaits any more
  // ("Connection is closed"): nothing is lost then, so they must not turn a clean stop into exit 1.
  process.on('unhandledRejection', (reason) => {
    if (stopping) {
      ctx.log.warn({ err: (reason as Error)?.message }, 'ignored during shutdown')
      return
    }
    ctx.log.error({ err: reason }, 'unhandled rejection')
    process.exit(1)
  })
  stop = async (signal: string) => {
    if (stopping) return
    stopping = true
    ctx.log.info({ signal }, 'worker stopping: letting running jobs finish')
    setTimeout(() => process.exit(1), shutdownBound).unref()
    // Running jobs finish inside workers.close(); a connection that fails to close after that
    // loses nothing, so it is logged rather than turned into a failed exit.
    const step = async (name: string, fn: () => Promise<unknown>) => {
      try {
        await fn()
      } catch (err) {
        ctx.log.warn({ err, step: name }, 'worker shutdown step failed')
      }
    }
    clearInterval(sweeper)
    await step('workers', () => workers.close())
    await step('maintenance queue', () => maintenance.close())
    await step('webhook queue', async () => webhooks?.close())
    await step('store and redis', () => close())
    process.exit(0)
  }
  ctx.log.info({ concurrency: config.jobs.concurrency, tz: config.jobs.tz }, 'worker ready')
  if (typeof process.send === 'function') process.send('ready')
  if (early !== null) await stop(early)
}

await main()
