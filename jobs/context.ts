import type { Redis } from 'ioredis'
import type { Config } from '../config.ts'
import type { TwoLayerCache } from '../plugins/app/cache/cache.ts'
import type { Clock } from '../plugins/app/clock.ts'
import type { Notifier } from '../plugins/app/notifications/notifier.ts'
import type { Store } from '../plugins/app/store/types/index.ts'

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

/** Rows per batch: no job ever loads a whole collection into memory. */
export const BATCH = 500
export const DAY_MS = 86_400_000
