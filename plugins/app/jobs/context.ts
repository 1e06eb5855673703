import type { Redis } from 'ioredis'
import type { Config } from '../../../config.ts'
import type { TwoLayerCache } from '../cache/cache.ts'
import type { Clock } from '../clock.ts'
import type { Notifier } from '../notifications/notifier.ts'
import type { Store } from '../store/types/index.ts'

/** What every job may use: plain dependencies, the same in the API process and the worker. */
export interface JobContext {
  store: Store
  cache: TwoLayerCache
  redis: Redis | null
  clock: Clock
  notifier: Notifier
  config: Config
  log: { info (obj: object, msg?: string): void, warn (obj: object, msg?: string): void, error (obj: object, msg?: string): void }
}

export type JobResult = Record<string, unknown>
export type Job = (ctx: JobContext) => Promise<JobResult>

/** A maintenance job and when it runs (a cron pattern in JOBS_TZ). */
export interface ScheduledJob { name: string, pattern: string, description: string, run: Job }
