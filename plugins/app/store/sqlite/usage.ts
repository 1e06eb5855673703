import { monthStart } from '../shared.ts'
import type { UsageDelta, UsagePoint, UsageStore, UsageTotal } from '../types/index.ts'
import type { Row, SqliteConnection } from './connection.ts'

const DAY_MS = 86_400_000

function toPoint (row: Row, at: 'hour' | 'day'): UsagePoint {
  return { hour: row[at] as number, units: row.units as number, requests: row.requests as number }
}

export class SqliteUsage implements UsageStore {
  constructor (private readonly db: SqliteConnection) {}

  /** Adds one delta inside the caller's transaction; the key's new total for the month. */
  #addUsage (d: UsageDelta): UsageTotal {
    const month = monthStart(d.hour)
    this.db.run(`INSERT INTO usage_hourly (key_id, hour, owner_id, units, requests) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (key_id, hour) DO UPDATE SET units = units + excluded.units, requests = requests + excluded.requests`,
    d.keyId, d.hour, d.ownerId, d.units, d.requests)
    const total = this.db.get(`INSERT INTO usage_monthly (key_id, month, owner_id, units, requests) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (key_id, month) DO UPDATE SET units = units + excluded.units, requests = requests + excluded.requests
      RETURNING units, requests`, d.keyId, month, d.ownerId, d.units, d.requests) as Row
    this.db.run('UPDATE keys SET last_used_at = MAX(COALESCE(last_used_at, 0), ?) WHERE id = ? AND owner_id = ?', d.lastUsedAt, d.keyId, d.ownerId)
    return { keyId: d.keyId, month, units: total.units as number, requests: total.requests as number }
  }

  // No batch id needed: the batch is one local transaction whose outcome the caller always learns, so a batch sent again was never committed.
  async recordUsage (deltas: UsageDelta[]): Promise<UsageTotal[]> {
    if (deltas.length === 0) return []
    return this.db.write(() => {
      const totals = new Map<string, UsageTotal>()
      for (const d of deltas) {
        const total = this.#addUsage(d)
        totals.set(`${total.keyId}:${total.month}`, total)
      }
      return [...totals.values()]
    })
  }

  async recordUsageOnce (ownerId: string, idempotencyKey: string, delta: UsageDelta): Promise<{ duplicate: boolean, total: UsageTotal }> {
    return this.db.write(() => {
      const fresh = this.db.run(`INSERT INTO idempotency (owner_id, idem_key, key_id, created_at) VALUES (?, ?, ?, ?)
        ON CONFLICT (owner_id, idem_key) DO NOTHING`, ownerId, idempotencyKey, delta.keyId, Date.now()) > 0
      if (fresh) return { duplicate: false, total: this.#addUsage(delta) }
      const month = monthStart(delta.hour)
      const row = this.db.get('SELECT units, requests FROM usage_monthly WHERE key_id = ? AND month = ? AND owner_id = ?', delta.keyId, month, ownerId)
      return { duplicate: true, total: { keyId: delta.keyId, month, units: (row?.units as number) ?? 0, requests: (row?.requests as number) ?? 0 } }
    })
  }

  async monthlyUsage (ownerId: string, month: number, keyIds?: string[]): Promise<UsageTotal[]> {
    const rows = keyIds === undefined
      ? this.db.all('SELECT key_id, units, requests FROM usage_monthly WHERE owner_id = ? AND month = ?', ownerId, month)
      : this.db.all(`SELECT key_id, units, requests FROM usage_monthly WHERE owner_id = ? AND month = ? AND key_id IN (${keyIds.map(() => '?').join(',')})`,
        ownerId, month, ...keyIds)
    return rows.map((r) => ({ keyId: r.key_id as string, month, units: r.units as number, requests: r.requests as number }))
  }

  async usageSeries (ownerId: string, keyId: string, fromHour: number, toHour: number): Promise<UsagePoint[]> {
    return this.db.all('SELECT hour, units, requests FROM usage_hourly WHERE key_id = ? AND owner_id = ? AND hour >= ? AND hour < ? ORDER BY hour',
      keyId, ownerId, fromHour, toHour).map((r) => toPoint(r, 'hour'))
  }

  async usageDaily (ownerId: string, keyId: string, fromDay: number, toDay: number): Promise<UsagePoint[]> {
    return this.db.all('SELECT day, units, requests FROM usage_daily WHERE key_id = ? AND owner_id = ? AND day >= ? AND day < ? ORDER BY day',
      keyId, ownerId, fromDay, toDay).map((r) => toPoint(r, 'day'))
  }

  async rollupDaily (fromHour: number, toHour: number): Promise<number> {
    const fromDay = fromHour - (fromHour % DAY_MS)
    const toDay = toHour - (toHour % DAY_MS) + DAY_MS
    return this.db.write(() => this.db.run(`INSERT INTO usage_daily (key_id, day, owner_id, units, requests)
      SELECT key_id, hour - (hour % ${DAY_MS}) AS day, owner_id, SUM(units), SUM(requests) FROM usage_hourly
      WHERE hour >= ? AND hour < ? GROUP BY key_id, day, owner_id
      ON CONFLICT (key_id, day) DO UPDATE SET units = excluded.units, requests = excluded.requests`, fromDay, toDay))
  }

  async purgeUsageHourly (before: number, limit: number): Promise<number> {
    return this.db.run('DELETE FROM usage_hourly WHERE rowid IN (SELECT rowid FROM usage_hourly WHERE hour < ? LIMIT ?)', before, limit)
  }

  async purgeIdempotency (before: number, limit: number): Promise<number> {
    return this.db.run('DELETE FROM idempotency WHERE rowid IN (SELECT rowid FROM idempotency WHERE created_at < ? LIMIT ?)', before, limit)
  }
}
