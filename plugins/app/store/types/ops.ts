export interface JobRunRecord {
  id: string
  job: string
  startedAt: number
  durationMs: number
  ok: boolean
  result: Record<string, unknown>
  error: string | null
}

export interface StatsSnapshot { at: number, data: Record<string, unknown> }

export interface SystemCounts { users: number, keys: number, activeKeys: number, sessions: number, unreadNotifications: number, pendingDeliveries: number }

/** The operator's records: job runs, stats snapshots, system-wide counts and the scheduler's leases. */
export interface OpsStore {
  recordJobRun (run: Omit<JobRunRecord, 'id'>): Promise<JobRunRecord>
  jobRuns (job: string, limit: number): Promise<JobRunRecord[]>
  saveStatsSnapshot (snapshot: StatsSnapshot): Promise<void>
  statsSnapshots (from: number, to: number, limit: number): Promise<StatsSnapshot[]>
  purgeStatsSnapshots (before: number): Promise<number>
  systemCounts (now: number): Promise<SystemCounts>
  /** A named lease for one holder at a time (one scheduler among processes). */
  acquireLease (name: string, holder: string, ttlMs: number, now: number): Promise<boolean>
  releaseLease (name: string, holder: string): Promise<void>
}
