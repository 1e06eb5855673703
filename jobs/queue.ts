import { Queue, Worker, type ConnectionOptions, type Job as BullJob } from 'bullmq'
import type { DeliveryRecord, NotificationsStore } from '../plugins/app/store/types/index.ts'
import type { JobContext } from '../plugins/app/jobs/context.ts'
import { runJob } from '../plugins/app/jobs/runner.ts'
import { findJob, SCHEDULE } from './schedule.ts'

export const MAINTENANCE_QUEUE = 'maintenance'
export const WEBHOOK_QUEUE = 'webhooks'

/**
 * BullMQ connection settings for REDIS_URL: BullMQ hands the URL to ioredis, which parses it
 * (credentials, database, rediss: for TLS). Workers block on Redis, so no per-command retry limit.
 */
export function bullConnection (url: string): ConnectionOptions {
  return { url, maxRetriesPerRequest: null }
}

/** Creates or updates one job scheduler per maintenance job; each tick produces one job. */
export async function upsertSchedules (queue: Queue, tz: string) {
  for (const job of SCHEDULE) {
    await queue.upsertJobScheduler(job.name, { pattern: job.pattern, tz }, {
      name: job.name,
      opts: { attempts: 3, backoff: { type: 'exponential', delay: 30_000 }, removeOnComplete: { count: 200 }, removeOnFail: { count: 500 } }
    })
  }
}

export async function queueDelivery (queue: Queue, delivery: DeliveryRecord) {
  // The delivery id is the job id: one job per delivery, however often it is queued.
  await queue.add('deliver', { deliveryId: delivery.id }, {
    jobId: delivery.id,
    attempts: 8,
    backoff: { type: 'exponential', delay: 30_000 },
    removeOnComplete: { count: 1000 },
    removeOnFail: { count: 1000 }
  })
}

/**
 * Queues every due pending delivery (again). Queueing is idempotent (the job id is the delivery
 * id), so this only adds the deliveries whose queueing failed, for example because Redis went
 * away between the store's write and the queue's: the store's record is what was acknowledged.
 */
export async function requeueDue (store: NotificationsStore, queue: Queue, now: number, limit = 500): Promise<number> {
  const due = await store.dueDeliveries(now, limit)
  for (const delivery of due) await queueDelivery(queue, delivery)
  return due.length
}

export interface JobWorkers { maintenance: Worker, webhooks: Worker, close (): Promise<void> }

/** The worker process's BullMQ workers: maintenance jobs by name, and webhook deliveries. */
export function startWorkers (ctx: JobContext, connection: ConnectionOptions, prefix: string): JobWorkers {
  // A job whose worker died (its lock not renewed) is found by the stalled check of any worker
  // and run again; both follow JOBS_LOCK_MS.
  const options = { connection, prefix, concurrency: ctx.config.jobs.concurrency, lockDuration: ctx.config.jobs.lockMs, stalledInterval: ctx.config.jobs.lockMs }
  const maintenance = new Worker(MAINTENANCE_QUEUE, async (job: BullJob) => {
    const scheduled = findJob(job.name)
    if (scheduled === undefined) throw new Error(`unknown job ${job.name}`)
    return runJob(scheduled, ctx)
  }, options)

  const webhooks = new Worker(WEBHOOK_QUEUE, async (job: BullJob<{ deliveryId: string }>) => {
    const delivery = await ctx.store.getDelivery(job.data.deliveryId)
    if (delivery === null || delivery.status !== 'pending') return { skipped: true }
    const outcome = await ctx.notifier.attempt(delivery)
    // BullMQ's retry schedule takes over from here.
    if (outcome === 'retry') throw new Error('delivery failed; will retry')
    return { outcome }
  }, options)

  for (const w of [maintenance, webhooks]) w.on('error', (err) => ctx.log.error({ err }, 'job worker error'))
  return {
    maintenance,
    webhooks,
    // close() lets the running job finish before it resolves.
    close: async () => { await Promise.all([maintenance.close(), webhooks.close()]) }
  }
}
