import type { Db, MongoClient, ReadPreferenceLike } from 'mongodb'
import type { AuditChain } from '../audit-chain.ts'
import { methodsOf } from '../compose.ts'
import type {
  AuditStore, KeysStore, NotificationsStore, OpsStore, SessionsStore, Store, StoreHealth, UsageStore, UsersStore, VaultStore
} from '../types/index.ts'
import { auditAppender, MongoAudit } from './audit.ts'
import { MongoConnection, requireTransactions } from './connection.ts'
import { withUnavailability } from './errors.ts'
import { MongoKeys } from './keys.ts'
import { applyMigrations } from './migrations.ts'
import { MongoNotifications } from './notifications.ts'
import { MongoOps } from './ops.ts'
import { MongoSessions } from './sessions.ts'
import { MongoUsage } from './usage.ts'
import { MongoUsers } from './users.ts'
import { MongoVault } from './vault.ts'

export interface MongoStoreOptions {
  /** The client `db` belongs to; multi-document changes run in transactions on its sessions. */
  client: MongoClient
  /** Whether close() closes the client too; leave unset when the caller owns the client. */
  closeClient?: boolean
  /** Where reads that tolerate staleness go (key lists, usage series, stats); a lagging secondary may miss a write of a moment ago. */
  staleReadPreference?: ReadPreferenceLike
  /** Links audit events under the server's key. */
  auditChain: AuditChain
}

/**
 * The MongoDB store (a replica set: changes that span documents run in transactions). Every
 * aggregate shares one connection, so a change and its audit event (or the account-deletion
 * cascade) commit in one transaction.
 */
export function createMongoStore (db: Db, options: MongoStoreOptions): Store {
  const mongo = new MongoConnection(options.client, db, options.staleReadPreference)
  const appendAudit = auditAppender(mongo, options.auditChain)
  let closed = false
  return {
    kind: 'mongo',
    init: async () => {
      await requireTransactions(db)
      await applyMigrations(mongo, options.auditChain)
    },
    close: async () => {
      if (closed) return
      closed = true
      if (options.closeClient === true) await options.client.close()
    },
    ping: async () => await ping(db),
    ...withUnavailability({
      ...methodsOf<UsersStore>(new MongoUsers(mongo, appendAudit)),
      ...methodsOf<VaultStore>(new MongoVault(mongo, appendAudit)),
      ...methodsOf<SessionsStore>(new MongoSessions(mongo, appendAudit)),
      ...methodsOf<KeysStore>(new MongoKeys(mongo, appendAudit)),
      ...methodsOf<UsageStore>(new MongoUsage(mongo)),
      ...methodsOf<AuditStore>(new MongoAudit(mongo, appendAudit)),
      ...methodsOf<NotificationsStore>(new MongoNotifications(mongo)),
      ...methodsOf<OpsStore>(new MongoOps(mongo))
    })
  }
}

async function ping (db: Db): Promise<StoreHealth> {
  const started = performance.now()
  try {
    await db.command({ ping: 1 })
    return { ok: true, latencyMs: performance.now() - started }
  } catch (err) {
    return { ok: false, latencyMs: performance.now() - started, error: (err as Error).message }
  }
}
