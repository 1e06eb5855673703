import type { JobContext, JobResult } from './context.ts'
import type { JobRunRecord, OpsStore } from '../plugins/app/store/types/index.ts'
import { SCHEDULE, type ScheduledJob } from './schedule.ts'

/** Runs one job and records the run (duration, result or error) for /api/system/jobs. */
export async function runJob (job: ScheduledJob, ctx: JobContext): Promise<JobResult> {
  const startedAt = ctx.clock.now()
  const t0 = performance.now()
  try {
    const result = await job.run(ctx)
    await ctx.store.recordJobRun({ job: job.name, startedAt, durationMs: performance.now() - t0, ok: true, result, error: null })
    ctx.log.info({ job: job.name, result }, 'job finished')
    return result
  } catch (err) {
    const message = (err as Error).message.slice(0, 500)
    await ctx.store.recordJobRun({ job: job.name, startedAt, durationMs: performance.now() - t0, ok: false, result: {}, error: message })
      .catch(() => {})
    ctx.log.error({ job: job.name, err }, 'job failed')
    throw err
  }
}

/** The last 20 recorded runs of every scheduled job, newest first (reports and metrics). */
export async function recentRuns (store: OpsStore): Promise<Array<{ job: ScheduledJob, runs: JobRunRecord[] }>> {
  return Promise.all(SCHEDULE.map(async (job) => ({ job, runs: await store.jobRuns(job.name, 20) })))
}
