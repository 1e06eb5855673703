import type { JobRunRecord } from '../store/types/index.ts'
import type { JobContext, ScheduledJob } from './context.ts'
import type { EmbeddedScheduler } from './embedded.ts'

/** Runs kept per job for reports and metrics. */
const RECENT_RUNS = 20

/** The maintenance jobs as this process knows them: the schedule, what the jobs use, and the scheduler of embedded mode. */
export class JobsService {
  constructor (
    readonly context: JobContext,
    readonly schedule: readonly ScheduledJob[],
    /** The in-process scheduler of embedded mode; null when worker processes run the jobs (Redis). */
    readonly scheduler: EmbeddedScheduler | null
  ) {}

  /** The last recorded runs of every scheduled job, newest first. */
  async recentRuns (): Promise<Array<{ job: ScheduledJob, runs: JobRunRecord[] }>> {
    return Promise.all(this.schedule.map(async (job) => ({ job, runs: await this.context.store.jobRuns(job.name, RECENT_RUNS) })))
  }
}
