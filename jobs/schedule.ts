import type { ScheduledJob } from '../plugins/app/jobs/context.ts'
import { cacheCleanup } from './cache-cleanup.ts'
import { dataCleanup } from './data-cleanup.ts'
import { keyExpiration } from './key-expiration.ts'
import { statsReport } from './stats-report.ts'
import { usageRollup } from './usage-rollup.ts'

/** The maintenance schedule (cron patterns in JOBS_TZ). */
export const SCHEDULE: ScheduledJob[] = [
  { name: 'cache-cleanup', pattern: '*/5 * * * *', description: 'every 5 minutes', run: cacheCleanup },
  { name: 'usage-rollup', pattern: '0 * * * *', description: 'hourly', run: usageRollup },
  { name: 'key-expiration', pattern: '0 2 * * *', description: 'daily at 02:00', run: keyExpiration },
  { name: 'data-cleanup', pattern: '0 3 * * 0', description: 'weekly, Sunday 03:00', run: dataCleanup },
  { name: 'stats-report', pattern: '0 * * * *', description: 'hourly', run: statsReport }
]

export function findJob (name: string): ScheduledJob | undefined {
  return SCHEDULE.find((j) => j.name === name)
}
