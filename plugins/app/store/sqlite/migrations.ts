import type { AuditChain } from '../audit-chain.ts'
import type { SqliteConnection } from './connection.ts'

/**
 * Seals each owner's last audit event: every event stored before link versions is v1, and no v1
 * event is accepted past its owner's seal (v1 links can be recomputed without the server's key).
 */
function sealV1Chains (db: SqliteConnection, chain: AuditChain): void {
  const lasts = db.all(`SELECT e.owner_id, e.seq, e.hash FROM audit_events e
    JOIN (SELECT owner_id, MAX(seq) AS seq FROM audit_events GROUP BY owner_id) m ON m.owner_id = e.owner_id AND m.seq = e.seq`)
  for (const last of lasts) {
    const seal = chain.seal(last.owner_id as string, last.seq as number, last.hash as string)
    db.run('INSERT INTO audit_seals (owner_id, seq, hash, mac) VALUES (?, ?, ?, ?)', last.owner_id, seal.seq, seal.hash, seal.mac)
  }
}

/**
 * Schema migrations, applied in order and recorded in schema_migrations: SQL, or a step that needs
 * the audit chain's key. Append only: a shipped migration is never edited.
 */
const MIGRATIONS: Array<string | ((db: SqliteConnection, chain: AuditChain) => void)> = [
  `CREATE TABLE users (
     id TEXT PRIMARY KEY,
     email TEXT NOT NULL UNIQUE,
     name TEXT,
     role TEXT NOT NULL,
     password_hash TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL
   );
   CREATE TABLE sessions (
     id TEXT PRIMARY KEY,
     user_id TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     last_used_at INTEGER NOT NULL,
     revoked_at INTEGER,
     user_agent TEXT,
     ip TEXT
   );
   CREATE INDEX sessions_user ON sessions (user_id, created_at);
   CREATE TABLE refresh_tokens (
     hash TEXT PRIMARY KEY,
     session_id TEXT NOT NULL,
     user_id TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     used_at INTEGER
   );
   CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
   CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
   CREATE TABLE keys (
     id TEXT PRIMARY KEY,
     owner_id TEXT NOT NULL,
     kind TEXT NOT NULL,
     name TEXT NOT NULL,
     service TEXT,
     description TEXT,
     environment TEXT NOT NULL,
     tags TEXT NOT NULL,
     scopes TEXT NOT NULL,
     metadata TEXT NOT NULL,
     prefix TEXT NOT NULL,
     start TEXT NOT NULL,
     hash TEXT UNIQUE,
     version INTEGER NOT NULL,
     status TEXT NOT NULL,
     expires_at INTEGER,
     rotation_interval_days INTEGER,
     rotation_due_at INTEGER,
     monthly_limit INTEGER,
     rate_limit TEXT,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     last_used_at INTEGER,
     search TEXT NOT NULL
   );
   CREATE INDEX keys_owner_created ON keys (owner_id, created_at, id);
   CREATE INDEX keys_owner_name ON keys (owner_id, name, id);
   CREATE INDEX keys_owner_last_used ON keys (owner_id, last_used_at, id);
   CREATE INDEX keys_owner_expires ON keys (owner_id, expires_at, id);
   CREATE INDEX keys_owner_status ON keys (owner_id, status);`,
  `ALTER TABLE keys ADD COLUMN recoverable INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE keys ADD COLUMN revoked_at INTEGER;
   CREATE TABLE key_versions (
     key_id TEXT NOT NULL,
     owner_id TEXT NOT NULL,
     version INTEGER NOT NULL,
     hash TEXT UNIQUE,
     start TEXT NOT NULL,
     ciphertext TEXT,
     created_at INTEGER NOT NULL,
     retired_at INTEGER,
     grace_ends_at INTEGER,
     PRIMARY KEY (key_id, version)
   );
   CREATE INDEX key_versions_owner ON key_versions (owner_id, key_id);
   CREATE TABLE vaults (
     user_id TEXT PRIMARY KEY,
     kdf TEXT NOT NULL,
     wrapped_key TEXT NOT NULL,
     revision INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL
   );
   CREATE TABLE audit_events (
     id TEXT PRIMARY KEY,
     owner_id TEXT NOT NULL,
     seq INTEGER NOT NULL,
     action TEXT NOT NULL,
     key_id TEXT,
     session_id TEXT,
     ip TEXT,
     detail TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     prev_hash TEXT NOT NULL,
     subject_digest TEXT NOT NULL,
     anonymised INTEGER NOT NULL DEFAULT 0,
     hash TEXT NOT NULL,
     UNIQUE (owner_id, seq)
   );
   CREATE INDEX audit_owner_action ON audit_events (owner_id, action, seq);
   CREATE INDEX audit_owner_key ON audit_events (owner_id, key_id, seq);`,
  `CREATE TABLE usage_hourly (
     key_id TEXT NOT NULL,
     hour INTEGER NOT NULL,
     owner_id TEXT NOT NULL,
     units INTEGER NOT NULL,
     requests INTEGER NOT NULL,
     PRIMARY KEY (key_id, hour)
   );
   CREATE INDEX usage_hourly_owner ON usage_hourly (owner_id, hour);
   CREATE TABLE usage_monthly (
     key_id TEXT NOT NULL,
     month INTEGER NOT NULL,
     owner_id TEXT NOT NULL,
     units INTEGER NOT NULL,
     requests INTEGER NOT NULL,
     PRIMARY KEY (key_id, month)
   );
   CREATE INDEX usage_monthly_owner ON usage_monthly (owner_id, month);
   CREATE TABLE idempotency (
     owner_id TEXT NOT NULL,
     idem_key TEXT NOT NULL,
     key_id TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     PRIMARY KEY (owner_id, idem_key)
   );`,
  `CREATE TABLE notifications (
     id TEXT PRIMARY KEY,
     owner_id TEXT NOT NULL,
     type TEXT NOT NULL,
     key_id TEXT,
     title TEXT NOT NULL,
     detail TEXT NOT NULL,
     dedupe_key TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     read_at INTEGER,
     UNIQUE (owner_id, dedupe_key)
   );
   CREATE INDEX notifications_owner ON notifications (owner_id, id);
   CREATE TABLE webhooks (
     owner_id TEXT PRIMARY KEY,
     url TEXT NOT NULL,
     secret TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL
   );
   CREATE TABLE deliveries (
     id TEXT PRIMARY KEY,
     owner_id TEXT NOT NULL,
     event_id TEXT NOT NULL UNIQUE,
     url TEXT NOT NULL,
     payload TEXT NOT NULL,
     status TEXT NOT NULL,
     attempts INTEGER NOT NULL,
     next_attempt_at INTEGER NOT NULL,
     last_error TEXT,
     created_at INTEGER NOT NULL,
     delivered_at INTEGER
   );
   CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
   CREATE INDEX deliveries_owner ON deliveries (owner_id);
   CREATE TABLE job_runs (
     id TEXT PRIMARY KEY,
     job TEXT NOT NULL,
     started_at INTEGER NOT NULL,
     duration_ms INTEGER NOT NULL,
     ok INTEGER NOT NULL,
     result TEXT NOT NULL,
     error TEXT
   );
   CREATE INDEX job_runs_job ON job_runs (job, started_at);
   CREATE TABLE stats_snapshots (at INTEGER PRIMARY KEY, data TEXT NOT NULL);
   CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at INTEGER NOT NULL);
   CREATE TABLE audit_anchors (owner_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL);
   CREATE INDEX audit_created ON audit_events (created_at);
   CREATE TABLE usage_daily (
     key_id TEXT NOT NULL,
     day INTEGER NOT NULL,
     owner_id TEXT NOT NULL,
     units INTEGER NOT NULL,
     requests INTEGER NOT NULL,
     PRIMARY KEY (key_id, day)
   );
   CREATE INDEX usage_daily_owner ON usage_daily (owner_id, day);
   CREATE INDEX keys_expires ON keys (status, expires_at);
   CREATE INDEX keys_rotation ON keys (status, rotation_due_at);
   CREATE INDEX keys_revoked ON keys (status, revoked_at);
   CREATE INDEX sessions_expires ON sessions (expires_at);
   CREATE INDEX usage_hourly_hour ON usage_hourly (hour);`,
  `ALTER TABLE audit_events ADD COLUMN link_version INTEGER NOT NULL DEFAULT 1;
   CREATE TABLE audit_seals (owner_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL, mac TEXT NOT NULL);`,
  sealV1Chains,
  // deleted_at: accounts marked deleted whose data the purge has not removed yet (few at a time, so partial).
  `ALTER TABLE users ADD COLUMN deleted_at INTEGER;
   CREATE INDEX users_deleted ON users (deleted_at) WHERE deleted_at IS NOT NULL;`
]

/** Applies the migrations not yet recorded, all in one write transaction. */
export function applyMigrations (db: SqliteConnection, chain: AuditChain): void {
  db.write(() => {
    db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)')
    for (let version = schemaVersion(db) + 1; version <= MIGRATIONS.length; version++) {
      const migration = MIGRATIONS[version - 1] as (typeof MIGRATIONS)[number]
      if (typeof migration === 'string') db.exec(migration)
      else migration(db, chain)
      db.run('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)', version, Date.now())
    }
  })
}

/** The schema version applied; used by tests and the health report. */
export function schemaVersion (db: SqliteConnection): number {
  return (db.get('SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations') as { v: number }).v
}
