import { ReadPreference, type ClientSession, type Collection, type Db, type MongoClient, type ReadPreferenceLike, type ReadPreferenceMode, type TransactionOptions } from 'mongodb'
import { ConfigError } from '../../../../config.ts'
import type {
  AuditAnchorDoc, AuditDoc, AuditSealDoc, DeliveryDoc, IdempotencyDoc, JobRunDoc, KeyDoc, KeyVersionDoc, LeaseDoc, MigrationDoc,
  NotificationDoc, RefreshTokenDoc, SessionDoc, StatsSnapshotDoc, UsageDailyDoc, UsageHourlyDoc, UsageMonthlyDoc, UserDoc,
  VaultDoc, WebhookDoc
} from './documents.ts'

/**
 * Whole-transaction attempts when a concurrent transaction got there first: took the audit sequence
 * number, or created a usage counter or idempotency record this one was about to create.
 */
const CONFLICT_ATTEMPTS = 5

/**
 * Snapshot reads and majority commits: a transaction sees one consistent state and its effects
 * survive a failover. Primary explicitly, whatever the connection string asks for reads.
 */
const TRANSACTION_OPTIONS: TransactionOptions = {
  readConcern: { level: 'snapshot' },
  writeConcern: { w: 'majority' },
  readPreference: 'primary'
}

/** A race lost to a concurrent transaction; the whole transaction is worth another go (transaction() gives it one). */
class RetryableConflict extends Error {}

/** Another append took this owner's next sequence number. */
export class AuditConflict extends RetryableConflict {
  constructor (ownerId: string, cause: unknown) {
    super(`audit chain of ${ownerId} changed during the append; try again`, { cause })
    this.name = 'AuditConflict'
  }
}

/**
 * A concurrent transaction created the document (a usage counter or an idempotency record) this one
 * was about to create. A duplicate key aborts the transaction on the server, so the retry starts over
 * and then sees the document.
 */
export class CreateConflict extends RetryableConflict {
  constructor (id: string, cause: unknown) {
    super(`${id} was created by a concurrent write; try again`, { cause })
    this.name = 'CreateConflict'
  }
}

/**
 * Stops start-up on a server that cannot run transactions: a standalone mongod accepts every
 * connection and ping, then refuses the first multi-document change. `hello` names a replica set
 * member by `setName` and a mongos by `msg: 'isdbgrid'`. A ConfigError, so the process exits 78.
 */
export async function requireTransactions (db: Db): Promise<void> {
  const hello = await db.admin().command({ hello: 1 })
  if (typeof hello.setName === 'string' || hello.msg === 'isdbgrid') return
  throw new ConfigError('Invalid configuration: MONGODB_URI names a standalone MongoDB server, but Keyward needs transactions, which only a replica set or mongos has; ' +
    'start a one-node replica set with `mongod --replSet rs0`, run `rs.initiate()` once in mongosh, and add `?replicaSet=rs0` to MONGODB_URI')
}

// Duck-typed rather than instanceof so an error from a second copy of the driver (another package's) still counts.
export function isDuplicateKey (err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 11000
}

/** MONGODB_READ_PREFERENCE with its staleness bound; the driver refuses a bound with primary, which needs none. */
export function staleReadPreference (mode: ReadPreferenceMode, maxStalenessSeconds: number): ReadPreference {
  return mode === 'primary' ? ReadPreference.primary : new ReadPreference(mode, undefined, { maxStalenessSeconds })
}

/**
 * The database every aggregate of the MongoDB store shares: its collections, and the transaction
 * in which one aggregate's change and another's (an audit event) commit together.
 */
export class MongoConnection {
  readonly users: Collection<UserDoc>
  readonly sessions: Collection<SessionDoc>
  readonly refreshTokens: Collection<RefreshTokenDoc>
  readonly keys: Collection<KeyDoc>
  /** The keys collection read with the stale-read preference (listKeys only). */
  readonly keysForList: Collection<KeyDoc>
  /** Options of reads that tolerate staleness (usage series, stats): MONGODB_READ_PREFERENCE. */
  readonly staleRead: { readPreference: ReadPreferenceLike }
  readonly keyVersions: Collection<KeyVersionDoc>
  readonly vaults: Collection<VaultDoc>
  readonly audit: Collection<AuditDoc>
  readonly usageHourly: Collection<UsageHourlyDoc>
  readonly usageMonthly: Collection<UsageMonthlyDoc>
  readonly idempotency: Collection<IdempotencyDoc>
  readonly dailyUsage: Collection<UsageDailyDoc>
  readonly notifications: Collection<NotificationDoc>
  readonly webhooks: Collection<WebhookDoc>
  readonly deliveries: Collection<DeliveryDoc>
  readonly jobRuns: Collection<JobRunDoc>
  readonly snapshots: Collection<StatsSnapshotDoc>
  readonly leases: Collection<LeaseDoc>
  readonly auditAnchors: Collection<AuditAnchorDoc>
  readonly auditSeals: Collection<AuditSealDoc>
  readonly migrations: Collection<MigrationDoc>

  constructor (readonly client: MongoClient, readonly db: Db, staleReadPreference: ReadPreferenceLike = 'primary') {
    this.staleRead = { readPreference: staleReadPreference }
    // Primary reads even if the connection string asks otherwise: most reads follow a write of the same caller.
    // Inside a transaction the driver ignores the collection's write concern and uses the transaction's.
    const primary = { writeConcern: { w: 'majority' as const }, readPreference: 'primary' as const }
    this.users = db.collection<UserDoc>('users', primary)
    this.sessions = db.collection<SessionDoc>('sessions', primary)
    this.refreshTokens = db.collection<RefreshTokenDoc>('refresh_tokens', primary)
    this.keys = db.collection<KeyDoc>('keys', primary)
    this.keysForList = db.collection<KeyDoc>('keys', this.staleRead)
    this.keyVersions = db.collection<KeyVersionDoc>('key_versions', primary)
    this.vaults = db.collection<VaultDoc>('vaults', primary)
    this.audit = db.collection<AuditDoc>('audit_events', primary)
    this.usageHourly = db.collection<UsageHourlyDoc>('usage_hourly', primary)
    this.usageMonthly = db.collection<UsageMonthlyDoc>('usage_monthly', primary)
    this.idempotency = db.collection<IdempotencyDoc>('idempotency', primary)
    this.dailyUsage = db.collection<UsageDailyDoc>('usage_daily', primary)
    this.notifications = db.collection<NotificationDoc>('notifications', primary)
    this.webhooks = db.collection<WebhookDoc>('webhooks', primary)
    this.deliveries = db.collection<DeliveryDoc>('deliveries', primary)
    this.jobRuns = db.collection<JobRunDoc>('job_runs', primary)
    this.snapshots = db.collection<StatsSnapshotDoc>('stats_snapshots', primary)
    this.leases = db.collection<LeaseDoc>('leases', primary)
    this.auditAnchors = db.collection<AuditAnchorDoc>('audit_anchors', primary)
    this.auditSeals = db.collection<AuditSealDoc>('audit_seals', primary)
    this.migrations = db.collection<MigrationDoc>('migrations', primary)
  }

  /**
   * Runs fn in a transaction (needs a replica set). The driver retries transient errors (write
   * conflicts) itself; a lost race for an audit sequence number or for creating a document is
   * retried here, a few times.
   * fn may run more than once, so it must only act through the session it is given.
   */
  async transaction<T> (fn: (session: ClientSession) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.client.withSession((session) => session.withTransaction(fn, TRANSACTION_OPTIONS))
      } catch (err) {
        if (!(err instanceof RetryableConflict) || attempt >= CONFLICT_ATTEMPTS) throw err
      }
    }
  }
}
