import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'libsql'
import { StoreBusyError } from '../errors.ts'

export type Row = Record<string, unknown>
type Db = InstanceType<typeof Database>

export interface SqliteConnectionOptions {
  /** Folder holding keyward.db; ':memory:' is not accepted, the store is always a real file. */
  dataDir: string
  /** How long a write waits for another connection's lock (libsql waits synchronously). */
  busyTimeoutMs?: number
  /** After a write found the file locked past the busy timeout, writes fail fast this long. */
  busyBackoffMs?: number
}

function isBusy (err: unknown): boolean {
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' && (code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY_') || code === 'SQLITE_LOCKED')
}

export function isUniqueViolation (err: unknown): boolean {
  const e = err as { code?: string, message?: string }
  return e?.code === 'SQLITE_CONSTRAINT_UNIQUE' || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' ||
    /UNIQUE constraint failed/.test(e?.message ?? '')
}

/**
 * The one connection every aggregate of the SQLite store shares: cached statements, and the
 * write transaction in which one aggregate's change and another's (an audit event) commit together.
 */
export class SqliteConnection {
  readonly path: string
  readonly #db: Db
  readonly #statements = new Map<string, ReturnType<Db['prepare']>>()
  readonly #busyTimeoutMs: number
  readonly #busyBackoffMs: number
  /** Until then writes try the lock without waiting for it. */
  #busyUntil = 0

  constructor (options: SqliteConnectionOptions) {
    this.#busyTimeoutMs = options.busyTimeoutMs ?? 250
    this.#busyBackoffMs = options.busyBackoffMs ?? 1000
    mkdirSync(options.dataDir, { recursive: true })
    this.path = join(options.dataDir, 'keyward.db')
    this.#db = new Database(this.path)
    // WAL lets readers proceed during a write and several processes share the file safely.
    this.#db.pragma('journal_mode = WAL')
    this.#db.pragma(`busy_timeout = ${this.#busyTimeoutMs}`)
    this.#db.pragma('synchronous = NORMAL')
    this.#db.pragma('foreign_keys = ON')
  }

  #stmt (sql: string) {
    let stmt = this.#statements.get(sql)
    if (stmt === undefined) {
      stmt = this.#db.prepare(sql)
      this.#statements.set(sql, stmt)
    }
    return stmt
  }

  get (sql: string, ...params: unknown[]): Row | undefined {
    return this.#stmt(sql).get(params) as Row | undefined
  }

  all (sql: string, ...params: unknown[]): Row[] {
    return this.#stmt(sql).all(params) as Row[]
  }

  /** One statement; outside a transaction it takes the write lock itself, so it is guarded too. */
  run (sql: string, ...params: unknown[]): number {
    const stmt = this.#stmt(sql)
    if (this.#db.inTransaction) return stmt.run(params).changes
    return this.#locking(() => stmt.run(params).changes)
  }

  /** Statements without parameters, run once (migrations); inside write() like the rest. */
  exec (sql: string): void {
    this.#db.exec(sql)
  }

  /**
   * Runs fn in a write transaction taken up front, so concurrent writers queue on the busy
   * timeout instead of failing. A lock held past that timeout (a long transaction of another
   * process) is a StoreBusyError. For `busyBackoffMs` after one, writes try the lock without
   * waiting: each wait blocks the event loop, so a stuck lock costs one wait per backoff period
   * instead of one per write, and writes succeed again as soon as the lock is released.
   */
  write<T> (fn: () => T): T {
    return this.#locking(() => this.#db.transaction(fn).immediate())
  }

  #locking<T> (fn: () => T): T {
    const probing = this.#busyUntil > Date.now()
    if (probing) this.#db.pragma('busy_timeout = 0')
    try {
      return fn()
    } catch (err) {
      if (!isBusy(err)) throw err
      if (!probing) this.#busyUntil = Date.now() + this.#busyBackoffMs
      throw new StoreBusyError()
    } finally {
      if (probing) this.#db.pragma(`busy_timeout = ${this.#busyTimeoutMs}`)
    }
  }

  /** SQLite's own consistency check; 'ok' when the file is sound. */
  integrityCheck (): string {
    const rows = this.#db.pragma('integrity_check') as Array<{ integrity_check: string }>
    return rows.map((r) => r.integrity_check).join('\n')
  }

  close (): void {
    if (!this.#db.open) return
    this.#statements.clear()
    this.#db.close()
  }
}
