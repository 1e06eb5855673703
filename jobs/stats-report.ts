import { hourStart } from '../plugins/app/store/shared.ts'
import type { JobContext, JobResult } from '../plugins/app/jobs/context.ts'

/** Stores an hourly snapshot of system and usage statistics: the history the monitoring charts. */
export async function statsReport (ctx: JobContext): Promise<JobResult> {
  const at = hourStart(ctx.clock.now())
  const counts = await ctx.store.systemCounts(ctx.clock.now())
  const memory = process.memoryUsage()
  const data = { ...counts, cache: ctx.cache.stats(), process: { rss: memory.rss, heapUsed: memory.heapUsed, uptimeSeconds: Math.round(process.uptime()) } }
  await ctx.store.saveStatsSnapshot({ at, data })
  return { at: new Date(at).toISOString(), ...counts }
}
