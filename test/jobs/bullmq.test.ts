import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { Queue, type Job } from 'bullmq'
import { createConfig } from '../../config.ts'
import { bullConnection, MAINTENANCE_QUEUE, queueDelivery, requeueDue, startWorkers, WEBHOOK_QUEUE } from '../../jobs/queue.ts'
import { openJobContext } from '../../jobs/standalone.ts'
import type { JobContext } from '../../plugins/app/jobs/context.ts'
import { TEST_SECRETS } from '../helpers/app.ts'
import { dropPrefix, REDIS_URL, testPrefix } from '../helpers/redis.ts'
import { onScopeEnd, type TestScope } from '../helpers/scope.ts'
import { testDir } from '../helpers/tmp.ts'
import { until } from '../helpers/until.ts'

/** A config, a queue and a BullMQ prefix of the test's own, all gone when the test ends. */
async function setup (scope: TestScope, label: string) {
  const dataDir = await testDir(scope, label)
  const prefix = testPrefix(label)
  onScopeEnd(scope, () => dropPrefix(prefix))
  const config = createConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', DATA_DIR: dataDir, REDIS_URL, REDIS_PREFIX: prefix, ...TEST_SECRETS })
  const connection = bullConnection(REDIS_URL)
  const bullPrefix = `${prefix}bull`
  const queue = new Queue(MAINTENANCE_QUEUE, { connection, prefix: bullPrefix })
  onScopeEnd(scope, () => queue.close())
  /** A job context (store, notifier) closed with the test. */
  const context = async () => {
    const opened = await openJobContext(config)
    onScopeEnd(scope, opened.close)
    return opened.ctx
  }
  /** The worker process's workers, closed with the test (a second close is a no-op). */
  const workers = (ctx: JobContext) => {
    const started = startWorkers(ctx, connection, bullPrefix)
    onScopeEnd(scope, () => started.close())
    return started
  }
  return { connection, bullPrefix, queue, context, workers }
}

describe('BullMQ workers on the real Redis', () => {
  it('two workers run each scheduled tick exactly once', async (t) => {
    const s = await setup(t, 'bull-tick')
    const one = await s.context()
    const workersOne = s.workers(one)
    const workersTwo = s.workers(await s.context())
    // Each worker's own completions: a tick run by both would show under both.
    const completedBy = new Map<string, string[]>()
    const record = (worker: string) => (job: Job) => { completedBy.set(job.id!, [...completedBy.get(job.id!) ?? [], worker]) }
    workersOne.maintenance.on('completed', record('one'))
    workersTwo.maintenance.on('completed', record('two'))
    await s.queue.upsertJobScheduler('stats-report', { every: 300 }, { name: 'stats-report' })
    await until(() => completedBy.size >= 4, 20_000, () => `four ticks completed (${completedBy.size})`)
    await s.queue.removeJobScheduler('stats-report')
    await workersOne.close()
    await workersTwo.close()
    const completed = await s.queue.getJobs(['completed'], 0, 1000)
    const ids = completed.map((j) => j.id)
    assert.equal(new Set(ids).size, ids.length, 'no tick ran twice')
    assert.deepEqual(new Set(ids), new Set(completedBy.keys()), `the queue's completed ticks are the ones the two workers reported (${ids.length} ticks ran)`)
    assert.deepEqual([...completedBy].filter(([, by]) => by.length !== 1), [], 'each tick completed in exactly one of the two workers')
    const runs = await one.store.jobRuns('stats-report', 200)
    assert.equal(runs.length, ids.length, 'one recorded run per tick, across both workers')
  })

  it('a graceful shutdown lets the running job finish', async (t) => {
    const s = await setup(t, 'bull-stop')
    const ctx = await s.context()
    const counts = ctx.store.systemCounts.bind(ctx.store)
    // A job that takes a while: what the shutdown must wait for.
    ctx.store.systemCounts = async (now) => { await sleep(700); return counts(now) }
    const workers = s.workers(ctx)
    const job = await s.queue.add('stats-report', {})
    await once(workers.maintenance, 'active')
    const started = Date.now()
    await workers.close()
    assert.ok(Date.now() - started >= 300, 'close waited for the job')
    assert.equal(await job.getState(), 'completed')
    assert.equal((await ctx.store.jobRuns('stats-report', 5)).length, 1)
  })

  it('a delivery the store holds but the queue lost (Redis gone when it was queued) is queued again by the sweep, once', async (t) => {
    const s = await setup(t, 'bull-sweep')
    const ctx = await s.context()
    const webhooks = new Queue(WEBHOOK_QUEUE, { connection: s.connection, prefix: s.bullPrefix })
    onScopeEnd(t, async () => {
      await webhooks.obliterate({ force: true })
      await webhooks.close()
    })
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
  })
})
