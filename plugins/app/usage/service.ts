import { AppError } from '../errors.ts'
import type { Clock } from '../clock.ts'
import type { KeyService } from '../keys/service.ts'
import { hourStart, monthStart } from '../store/shared.ts'
import type { KeyRecord, KeysStore, UsagePoint, UsageStore } from '../store/types/index.ts'
import type { UsageMeter } from './meter.ts'
import type { Static } from 'typebox'
import type { RecordUsageBody, UsageQuery } from '../../../schemas/usage.ts'

export type UsageQueryInput = Static<typeof UsageQuery>
export type RecordUsageInput = Static<typeof RecordUsageBody>
export type Granularity = NonNullable<UsageQueryInput['granularity']>

const DAY_MS = 86_400_000
/** The widest window each granularity may ask for (bounded work per request). */
const MAX_SPAN_MS: Record<Granularity, number> = { hour: 31 * DAY_MS, day: 366 * DAY_MS, month: 5 * 366 * DAY_MS }
const DEFAULT_SPAN_MS: Record<Granularity, number> = { hour: DAY_MS, day: 30 * DAY_MS, month: 365 * DAY_MS }

function bucketStart (ms: number, g: Granularity): number {
  if (g === 'hour') return hourStart(ms)
  if (g === 'day') return ms - (ms % DAY_MS)
  return monthStart(ms)
}

function parse (value: string | undefined, field: string): number | undefined {
  if (value === undefined) return undefined
  const ms = Date.parse(value)
  if (Number.isNaN(ms)) throw new AppError(400, 'VALIDATION_FAILED', `querystring/${field} must be an ISO 8601 date-time`)
  return ms
}

/** Usage read and recorded through the API (verification charges go through the meter). */
export class UsageService {
  constructor (private readonly store: KeysStore & UsageStore, private readonly keys: KeyService, private readonly meter: UsageMeter, private readonly clock: Clock) {}

  async series (ownerId: string, keyId: string, query: UsageQueryInput) {
    const key = await this.keys.get(ownerId, keyId)
    const g = query.granularity ?? 'hour'
    const to = parse(query.to, 'to') ?? this.clock.now()
    const from = parse(query.from, 'from') ?? to - DEFAULT_SPAN_MS[g]
    if (from >= to) throw new AppError(400, 'VALIDATION_FAILED', 'querystring/from must be before to')
    if (to - from > MAX_SPAN_MS[g]) throw new AppError(400, 'VALIDATION_FAILED', `querystring: a ${g} series covers at most ${MAX_SPAN_MS[g] / DAY_MS} days`)
    const rows: UsagePoint[] = await this.store.usageSeries(ownerId, key.id, hourStart(from), to)
    const buckets = new Map<number, { units: number, requests: number }>()
    let units = 0
    let requests = 0
    for (const row of rows) {
      const start = bucketStart(row.hour, g)
      const bucket = buckets.get(start) ?? { units: 0, requests: 0 }
      bucket.units += row.units
      bucket.requests += row.requests
      buckets.set(start, bucket)
      units += row.units
      requests += row.requests
    }
    return {
      keyId: key.id,
      granularity: g,
      from: new Date(from).toISOString(),
      to: new Date(to).toISOString(),
      points: [...buckets.entries()].sort((a, b) => a[0] - b[0]).map(([start, b]) => ({ start: new Date(start).toISOString(), ...b })),
      total: { units, requests }
    }
  }

  /** Records usage of a key directly in the store (acknowledged = durable), once per idempotency key. */
  async record (ownerId: string, keyId: string, input: RecordUsageInput, idempotencyKey?: string) {
    const key: KeyRecord = await this.keys.get(ownerId, keyId)
    if (key.status === 'revoked') throw new AppError(409, 'KEY_REVOKED', 'The key is revoked')
    const now = this.clock.now()
    const delta = { ownerId, keyId: key.id, hour: hourStart(now), units: input.cost ?? input.count, requests: input.count, lastUsedAt: now }
    const { duplicate, total } = idempotencyKey === undefined
      ? { duplicate: false, total: (await this.store.recordUsage([delta]))[0] as { keyId: string, month: number, units: number, requests: number } }
      : await this.store.recordUsageOnce(ownerId, idempotencyKey, delta)
    this.meter.observe(total)
    const limit = key.monthlyLimit
    return {
      keyId: key.id,
      duplicate,
      month: { units: total.units, requests: total.requests, limit, remaining: limit === null ? null : Math.max(0, limit - total.units) }
    }
  }

  /** This month's usage; costs one read per key used this month, not per key owned. */
  async summary (ownerId: string) {
    const month = monthStart(this.clock.now())
    const totals = await this.store.monthlyUsage(ownerId, month)
    const keys = await Promise.all(totals.map((t) => this.store.getKey(ownerId, t.keyId)))
    const byKey = totals.flatMap((t, i) => {
      const key = keys[i]
      if (key === null || key === undefined) return [] // deleted since
      return [{ keyId: t.keyId, name: key.name, service: key.service, units: t.units, requests: t.requests, monthlyLimit: key.monthlyLimit }]
    }).sort((a, b) => b.units - a.units || a.keyId.localeCompare(b.keyId))
    // A Map, not an object: service names are user text ('__proto__' must stay a plain key).
    const byService = new Map<string, { units: number, requests: number }>()
    let units = 0
    let requests = 0
    for (const row of byKey) {
      const name = row.service ?? 'none'
      let entry = byService.get(name)
      if (entry === undefined) byService.set(name, entry = { units: 0, requests: 0 })
      entry.units += row.units
      entry.requests += row.requests
      units += row.units
      requests += row.requests
    }
    return {
      month: new Date(month).toISOString(),
      total: { units, requests },
      byKey,
      byService: Object.fromEntries(byService),
      topKeys: byKey.slice(0, 10).map((r) => ({ keyId: r.keyId, name: r.name, units: r.units }))
    }
  }
}
