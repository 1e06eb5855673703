import { randomUUID } from 'node:crypto'
import type { Clock } from '../clock.ts'
import { hourStart, monthStart, nextMonthStart } from '../store/shared.ts'
import type { UsageDelta, UsageStore, UsageTotal } from '../store/types/index.ts'

interface Known {
  month: number
  /** Units recorded in the store for the month, as of syncedAt (all processes). */
  units: number
  syncedAt: number
  refreshing: Promise<void> | null
}

type Pending = UsageDelta

export interface MeterStats {
  pendingKeys: number
  flushes: number
  flushFailures: number
  flushedUnits: number
}

/**
 * Usage metering off the request path. Charges are added to in-memory deltas, flushed to the
 * store in one batch at least every `flushIntervalMs` (and on stop). Each process knows the
 * store's monthly total per key as of its last sync (at most one interval old) and adds its own
 * unflushed charges, so across N processes a monthly limit is overshot by at most what the other
 * processes charged in about two flush intervals (unflushed, plus not yet re-read).
 */
export class UsageMeter {
  private pending = new Map<string, Pending>()
  /** Unflushed units per `${keyId}:${month}`, so a limit check costs one map lookup. */
  private pendingUnitsByMonth = new Map<string, number>()
  private known = new Map<string, Known>()
  private timer: NodeJS.Timeout | null = null
  private flushing: Promise<void> | null = null
  /** The batch whose last write failed, sent again under the same id before anything newer. */
  private unsent: { batchId: string, deltas: UsageDelta[] } | null = null
  private counters = { flushes: 0, flushFailures: 0, flushedUnits: 0 }
  /** The current UTC month's bounds: every verify asks twice, the Date work happens once a month. */
  private month = { start: 0, next: 0 }

  constructor (
    private readonly store: UsageStore,
    private readonly clock: Clock,
    private readonly options: { flushIntervalMs: number, onError?: (err: unknown) => void }
  ) {}

  start () {
    if (this.timer !== null) return
    this.timer = setInterval(() => { this.flush().catch(() => {}) }, this.options.flushIntervalMs)
    this.timer.unref()
  }

  /** Stops the timer and flushes until nothing is pending (graceful shutdown loses nothing). */
  async stop () {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    for (let attempt = 0; this.pending.size > 0 || this.unsent !== null || this.flushing !== null; attempt++) {
      try {
        await this.flush()
      } catch (err) {
        if (attempt >= 2) throw err
      }
    }
  }

  private monthOf (now: number): number {
    if (now < this.month.start || now >= this.month.next) this.month = { start: monthStart(now), next: nextMonthStart(now) }
    return this.month.start
  }

  /** What `used` answers, read now (after any refresh a caller waited for). */
  usedNow (keyId: string): number {
    const known = this.known.get(keyId)
    const month = this.monthOf(this.clock.now())
    return (known !== undefined && known.month === month ? known.units : 0) + this.pendingUnits(keyId, month)
  }

  /**
   * Units used this month by the key, including this process's unflushed charges. What this
   * process knows of the store's total is at most one flush interval old: the first call after
   * that re-reads it (concurrent callers share the read).
   */
  used (ownerId: string, keyId: string): number | Promise<number> {
    const now = this.clock.now()
    const month = this.monthOf(now)
    let known = this.known.get(keyId)
    if (known === undefined || known.month !== month) {
      known = { month, units: 0, syncedAt: 0, refreshing: null }
      this.known.set(keyId, known)
    }
    if (now - known.syncedAt > this.options.flushIntervalMs) {
      const k = known
      return this.refresh(ownerId, keyId, k).then(() => k.units + this.pendingUnits(keyId, month))
    }
    return known.units + this.pendingUnits(keyId, month)
  }

  private refresh (ownerId: string, keyId: string, known: Known): Promise<void> {
    known.refreshing ??= this.store.monthlyUsage(ownerId, known.month, [keyId]).then((totals) => {
      // Units this process flushed after the read began are already in `known`; never go backwards.
      const units = totals[0]?.units ?? 0
      if (units > known.units) known.units = units
      known.syncedAt = this.clock.now()
    }).finally(() => { known.refreshing = null })
    return known.refreshing
  }

  private pendingUnits (keyId: string, month: number): number {
    return this.pendingUnitsByMonth.get(`${keyId}:${month}`) ?? 0
  }

  /** Adds a charge; it reaches the store at the next flush. */
  charge (ownerId: string, keyId: string, units: number) {
    const now = this.clock.now()
    const hour = hourStart(now)
    const slot = `${keyId}:${hour}`
    const monthSlot = `${keyId}:${this.monthOf(now)}`
    this.pendingUnitsByMonth.set(monthSlot, (this.pendingUnitsByMonth.get(monthSlot) ?? 0) + units)
    const pending = this.pending.get(slot)
    if (pending === undefined) {
      this.pending.set(slot, { ownerId, keyId, hour, units, requests: 1, lastUsedAt: now })
    } else {
      pending.units += units
      pending.requests++
      pending.lastUsedAt = now
    }
  }

  /** Writes every pending delta in one batch; failed batches are kept and retried. */
  flush (): Promise<void> {
    this.flushing ??= this.flushOnce().finally(() => { this.flushing = null })
    return this.flushing
  }

  private async flushOnce () {
    // A failed batch goes again first, alone and under its own id, so a store that applied it before failing counts it once.
    if (this.unsent !== null) {
      const { batchId, deltas } = this.unsent
      this.settle(deltas, await this.send(deltas, batchId))
      this.unsent = null
    }
    if (this.pending.size === 0) return
    const batch = [...this.pending.values()]
    this.pending = new Map()
    const batchId = randomUUID()
    let totals: UsageTotal[]
    try {
      totals = await this.send(batch, batchId)
    } catch (err) {
      // Kept whole until it is written, so nothing acknowledged is lost.
      this.unsent = { batchId, deltas: batch }
      throw err
    }
    this.settle(batch, totals)
  }

  private async send (batch: UsageDelta[], batchId: string): Promise<UsageTotal[]> {
    try {
      return await this.store.recordUsage(batch, batchId)
    } catch (err) {
      this.counters.flushFailures++
      this.options.onError?.(err)
      throw err
    }
  }

  private settle (batch: UsageDelta[], totals: UsageTotal[]) {
    this.counters.flushes++
    const now = this.clock.now()
    for (const d of batch) {
      this.counters.flushedUnits += d.units
      const monthSlot = `${d.keyId}:${monthStart(d.hour)}`
      const left = (this.pendingUnitsByMonth.get(monthSlot) ?? 0) - d.units
      if (left > 0) this.pendingUnitsByMonth.set(monthSlot, left)
      else this.pendingUnitsByMonth.delete(monthSlot)
    }
    for (const total of totals) {
      const known = this.known.get(total.keyId)
      if (known !== undefined && known.month === total.month) {
        known.units = total.units
        known.syncedAt = now
      }
    }
  }

  /** Takes in a total recorded outside the meter (an idempotent usage record). */
  observe (total: UsageTotal) {
    const known = this.known.get(total.keyId)
    if (known !== undefined && known.month === total.month && total.units > known.units) known.units = total.units
  }

  stats (): MeterStats {
    return { pendingKeys: this.pending.size + (this.unsent?.deltas.length ?? 0), ...this.counters }
  }
}
