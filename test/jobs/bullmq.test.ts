import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, it } from 'node:test'
import { Queue } from 'bullmq'
import { createConfig } from '../../config.ts'
import { bullConnection, MAINTENANCE_QUEUE, queueDelivery, requeueDue, startWorkers, WEBHOOK_QUEUE } from '../../jobs/queue.ts'
import { openJobContext } from '../../jobs/standalone.ts'
import { TEST_SECRETS } from '../helpers/app.ts'
import { dropPrefix, REDIS_URL, testPrefix } from '../helpers/redis.ts'
import { tempDir } from '../helpers/tmp.ts'

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function setup (label: string) {
  const tmp = await tempDir(label)
  const prefix = testPrefix(label)
  const config = createConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', DATA_DIR: tmp.dir, REDIS_URL, REDIS_PREFIX: prefix, ...TEST_SECRETS })
  const connection = bullConnection(REDIS_URL)
  const bullPrefix = `${prefix}bull`
  const queue = new Queue(MAINTENANCE_QUEUE, { connection, prefix: bullPrefix })
  return {
    config,
    connection,
    bullPrefix,
    queue,
    cleanup: async () => {
      await queue.close()
      await dropPrefix(prefix)
      await tmp.remove()
    }
  }
}

describe('BullMQ workers on the real Redis', () => {
  it('two workers run each scheduled tick exactly once', async () => {
    const s = await setup('bull-tick')
    const one = await openJobContext(s.config)
    const two = await openJobContext(s.config)
    const workersOne = startWorkers(one.ctx, s.connection, s.bullPrefix)
    const workersTwo = startWorkers(two.ctx, s.connection, s.bullPrefix)
    try {
      await s.queue.upsertJobScheduler('stats-report', { every: 300 }, { name: 'stats-report' })
      await wait(2500)
      await s.queue.removeJobScheduler('stats-report')
      await workersOne.close()
      await workersTwo.close()
      const completed = await s.queue.getJobs(['completed'], 0, 1000)
      const ids = completed.map((j) => j.id)
      assert.ok(ids.length >= 4, `${ids.length} ticks ran`)
      assert.equal(new Set(ids).size, ids.length, 'no tick ran twice')
      const runs = await one.ctx.store.jobRuns('stats-report', 200)
      assert.equal(runs.length, ids.length, 'one recorded run per tick, across both workers')
      const byWorker = new Set(completed.map((j) => j.processedBy ?? ''))
      assert.ok(byWorker.size >= 1)
    } finally {
      await workersOne.close()
      await workersTwo.close()
      await one.close()
      await two.close()
      await s.cleanup()
    }
  })

  it('a graceful shutdown lets the running job finish', async () => {
    const s = await setup('bull-stop')
    const { ctx, close } = await openJobContext(s.config)
    const counts = ctx.store.systemCounts.bind(ctx.store)
    ctx.store.systemCounts = async (now) => { await wait(700); return counts(now) }
    const workers = startWorkers(ctx, s.connection, s.bullPrefix)
    try {
      const job = await s.queue.add('stats-report', {})
      await once(workers.maintenance, 'active')
      const started = Date.now()
      await workers.close()
      assert.ok(Date.now() - started >= 300, 'close waited for the job')
      assert.equal(await job.getState(), 'completed')
      assert.equal((await ctx.store.jobRuns('stats-report', 5)).length, 1)
    } finally {
      await close()
      await s.cleanup()
    }
  })

  it('a delivery the store holds but the queue lost (Redis gone when it was queued) is queued again by the sweep, once', async () => {
    const s = await setup('bull-sweep')
    const { ctx, close } = await openJobContext(s.config)
    const webhooks = new Queue(WEBHOOK_QUEUE, { connection: s.connection, prefix: s.bullPrefix })
    try {
      const now = Date.now()
      const lost = await ctx.store.enqueueDelivery({ ownerId: 'owner-1', eventId: 'event-lost', url: 'https://hooks.example.com/', payload: '{}' }, now)
      const queued = await ctx.store.enqueueDelivery({ ownerId: 'owner-1', eventId: 'event-queued', url: 'https://hooks.example.com/', payload: '{}' }, now)
      assert.ok(lost !== null && queued !== null)
      await queueDelivery(webhooks, queued)
      assert.equal(await webhooks.getJob(lost.id), undefined, 'the first one never reached the queue')

      assert.equal(await requeueDue(ctx.store, webhooks, now + 1), 2, 'both are due')
      assert.equal((await webhooks.getJob(lost.id))?.data.deliveryId, lost.id, 'the lost one is queued now')
      assert.equal(await webhooks.getWaitingCount(), 2, 'the one already queued was not queued twice')
      await requeueDue(ctx.store, webhooks, now + 2)
      assert.equal(await webhooks.getWaitingCount(), 2, 'sweeping again adds nothing')
    } finally {
      await webhooks.obliterate({ force: true })
      await webhooks.close()
      await close()
      await s.cleanup()
    }
  })
})
