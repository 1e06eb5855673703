import { newId } from '../ids.ts'
import type { JobRunRecord, OpsStore, StatsSnapshot, SystemCounts } from '../types/index.ts'
import type { Row, SqliteConnection } from './connection.ts'
import { toJobRun } from './mappers.ts'

/** Runs kept per job; recordJobRun drops older ones. */
const JOB_RUNS_KEPT = 200

export class SqliteOps implements OpsStore {
  constructor (private readonly db: SqliteConnection) {}

  async recordJobRun (run: Omit<JobRunRecord, 'id'>): Promise<JobRunRecord> {
    const record = { id: newId(run.startedAt), ...run }
    this.db.run('INSERT INTO job_runs (id, job, started_at, duration_ms, ok, result, error) VALUES (?, ?, ?, ?, ?, ?, ?)',
      record.id, run.job, run.startedAt, Math.round(run.durationMs), run.ok ? 1 : 0, JSON.stringify(run.result), run.error)
    this.db.run('DELETE FROM job_runs WHERE job = ? AND id NOT IN (SELECT id FROM job_runs WHERE job = ? ORDER BY started_at DESC LIMIT ?)',
      run.job, run.job, JOB_RUNS_KEPT)
    return record
  }

  async jobRuns (job: string, limit: number): Promise<JobRunRecord[]> {
    return this.db.all('SELECT * FROM job_runs WHERE job = ? ORDER BY started_at DESC, id DESC LIMIT ?', job, limit).map(toJobRun)
  }

  async saveStatsSnapshot (snapshot: StatsSnapshot): Promise<void> {
    this.db.run('INSERT INTO stats_snapshots (at, data) VALUES (?, ?) ON CONFLICT (at) DO UPDATE SET data = excluded.data', snapshot.at, JSON.stringify(snapshot.data))
  }

  async statsSnapshots (from: number, to: number, limit: number): Promise<StatsSnapshot[]> {
    return this.db.all('SELECT at, data FROM stats_snapshots WHERE at >= ? AND at < ? ORDER BY at LIMIT ?', from, to, limit)
      .map((r) => ({ at: r.at as number, data: JSON.parse(r.data as string) }))
  }

  async purgeStatsSnapshots (before: number): Promise<number> {
    return this.db.run('DELETE FROM stats_snapshots WHERE at < ?', before)
  }

  async systemCounts (now: number): Promise<SystemCounts> {
    const n = (sql: string, ...params: unknown[]) => (this.db.get(sql, ...params) as Row).n as number
    return {
      users: n('SELECT COUNT(*) AS n FROM users WHERE deleted_at IS NULL'),
      keys: n('SELECT COUNT(*) AS n FROM keys'),
      activeKeys: n("SELECT COUNT(*) AS n FROM keys WHERE status = 'active'"),
      sessions: n('SELECT COUNT(*) AS n FROM sessions WHERE revoked_at IS NULL AND expires_at > ?', now),
      unreadNotifications: n('SELECT COUNT(*) AS n FROM notifications WHERE read_at IS NULL'),
      pendingDeliveries: n("SELECT COUNT(*) AS n FROM deliveries WHERE status = 'pending'")
    }
  }

  async acquireLease (name: string, holder: string, ttlMs: number, now: number): Promise<boolean> {
    return this.db.write(() => this.db.run(`INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
      ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
      WHERE leases.holder = excluded.holder OR leases.expires_at <= ?`, name, holder, now + ttlMs, now) > 0)
  }

  async releaseLease (name: string, holder: string): Promise<void> {
    this.db.run('DELETE FROM leases WHERE name = ? AND holder = ?', name, holder)
  }
}
