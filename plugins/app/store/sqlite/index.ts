import type { AuditChain } from '../audit-chain.ts'
import { methodsOf } from '../compose.ts'
import type {
  AuditStore, KeysStore, NotificationsStore, OpsStore, SessionsStore, Store, StoreHealth, UsageStore, UsersStore, VaultStore
} from '../types/index.ts'
import { auditAppender, SqliteAudit } from './audit.ts'
import { SqliteConnection, type SqliteConnectionOptions } from './connection.ts'
import { SqliteKeys } from './keys.ts'
import { applyMigrations, schemaVersion } from './migrations.ts'
import { SqliteNotifications } from './notifications.ts'
import { SqliteOps } from './ops.ts'
import { SqliteSessions } from './sessions.ts'
import { SqliteUsage } from './usage.ts'
import { SqliteUsers } from './users.ts'
import { SqliteVault } from './vault.ts'

export interface SqliteStoreOptions extends SqliteConnectionOptions {
  /** Links audit events under the server's key. */
  auditChain: AuditChain
}

/** The SQLite Store, with what tests and operators ask of the file itself. */
export interface SqliteStore extends Store {
  readonly kind: 'sqlite'
  readonly path: string
  /** The schema version applied; used by tests and the health report. */
  schemaVersion (): number
  /** SQLite's own consistency check; 'ok' when the file is sound. */
  integrityCheck (): string
}

/**
 * The embedded store: one file, one connection shared by every aggregate, so a change and its
 * audit event (or the account-deletion cascade) commit in one transaction.
 */
export function createSqliteStore (options: SqliteStoreOptions): SqliteStore {
  const db = new SqliteConnection(options)
  const appendAudit = auditAppender(db, options.auditChain)
  return {
    kind: 'sqlite',
    path: db.path,
    init: async () => { applyMigrations(db, options.auditChain) },
    close: async () => { db.close() },
    ping: async () => ping(db),
    schemaVersion: () => schemaVersion(db),
    integrityCheck: () => db.integrityCheck(),
    ...methodsOf<UsersStore>(new SqliteUsers(db, appendAudit)),
    ...methodsOf<VaultStore>(new SqliteVault(db, appendAudit)),
    ...methodsOf<SessionsStore>(new SqliteSessions(db, appendAudit)),
    ...methodsOf<KeysStore>(new SqliteKeys(db, appendAudit)),
    ...methodsOf<UsageStore>(new SqliteUsage(db)),
    ...methodsOf<AuditStore>(new SqliteAudit(db, appendAudit)),
    ...methodsOf<NotificationsStore>(new SqliteNotifications(db)),
    ...methodsOf<OpsStore>(new SqliteOps(db))
  }
}

function ping (db: SqliteConnection): StoreHealth {
  const started = performance.now()
  try {
    db.get('SELECT 1 AS ok')
    return { ok: true, latencyMs: performance.now() - started }
  } catch (err) {
    return { ok: false, latencyMs: performance.now() - started, error: (err as Error).message }
  }
}
