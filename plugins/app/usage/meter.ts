import { randomUUID } from 'node:crypto'
import type { Clock } from '../clock.ts'
import { hourStart, monthStart, nextMonthStart } from '../store/shared.ts'
import type { UsageDelta, UsageStore, UsageTotal } from '../store/types/index.ts'

/** What this process knows of one key's usage: one map lookup per verify call finds all of it. */
interface KeyUsage {
  /** The UTC month `units` and `syncedAt` are about. */
  month: number
  /** Units recorded in the store for the month, as of syncedAt (all processes). */
  units: number
  syncedAt: number
  refreshing: Promise<void> | null
  /** This process's units charged in `pendingMonth` and not yet written (gathered, in flight or unsent). */
  pendingMonth: number
  pendingUnits: number
  /** The key's delta for its latest hour in the batch being gathered (generation `batch`), if any. */
  current: Pending | null
  batch: number
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
  /** The batch being gathered: one delta per key and hour, keyed `${keyId}:${hour}`. */
  private pending = new Map<string, Pending>()
  /** Bumped each time the gathered batch is taken for writing. */
  private batch = 0
  private keys = new Map<string, KeyUsage>()
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

  /** The key's record, moved to `month` if it was about an earlier one. */
  private record (keyId: string, month: number): KeyUsage {
    let k = this.keys.get(keyId)
    if (k === undefined) {
      k = { month, units: 0, syncedAt: 0, refreshing: null, pendingMonth: month, pendingUnits: 0, current: null, batch: -1 }
      this.keys.set(keyId, k)
    } else if (k.month !== month) {
      k.month = month
      k.units = 0
      k.syncedAt = 0
    }
    return k
  }

  private static unflushed (k: KeyUsage, month: number): number {
    return k.pendingMonth === month ? k.pendingUnits : 0
  }

  /** What `used` answers, read now (after any refresh a caller waited for). */
  usedNow (keyId: string): number {
    const k = this.keys.get(keyId)
    if (k === undefined) return 0
    const month = this.monthOf(this.clock.now())
    return (k.month === month ? k.units : 0) + UsageMeter.unflushed(k, month)
  }

  /**
   * Units used this month by the key, including this process's unflushed charges. What this
   * process knows of the store's total is at most one flush interval old: the first call after
   * that re-reads it (concurrent callers share the read).
   */
  used (ownerId: string, keyId: string): number | Promise<number> {
    const now = this.clock.now()
    const month = this.monthOf(now)
    const k = this.record(keyId, month)
    if (now - k.syncedAt > this.options.flushIntervalMs) {
      return this.refresh(ownerId, keyId, k).then(() => (k.month === month ? k.units : 0) + UsageMeter.unflushed(k, month))
    }
    return k.units + UsageMeter.unflushed(k, month)
  }

  private refresh (ownerId: string, keyId: string, k: KeyUsage): Promise<void> {
    const month = k.month
    k.refreshing ??= this.store.monthlyUsage(ownerId, month, [keyId]).then((totals) => {
      // A read of a month that has since ended says nothing of the new one.
      if (k.month !== month) return
      // Units this process flushed after the read began are already in `units`; never go backwards.
      const units = totals[0]?.units ?? 0
      if (units > k.units) k.units = units
      k.syncedAt = this.clock.now()
    }).finally(() => { k.refreshing = null })
    return k.refreshing
  }

  /** Adds a charge; it reaches the store at the next flush. */
  charge (ownerId: string, keyId: string, units: number) {
    const now = this.clock.now()
    const hour = hourStart(now)
    const month = this.monthOf(now)
    const k = this.record(keyId, month)
    if (k.pendingMonth !== month) {
      k.pendingMonth = month
      k.pendingUnits = 0
    }
    k.pendingUnits += units
    // The same key in the same hour and batch (nearly every call): no slot text, no batch lookup.
    let pending = k.batch === this.batch && k.current !== null && k.current.hour === hour ? k.current : undefined
    if (pending === undefined) {
      const slot = `${keyId}:${hour}`
      pending = this.pending.get(slot)
      if (pending === undefined) {
        pending = { ownerId, keyId, hour, units: 0, requests: 0, lastUsedAt: now }
        this.pending.set(slot, pending)
      }
      k.current = pending
      k.batch = this.batch
    }
    pending.units += units
    pending.requests++
    pending.lastUsedAt = now
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
    this.batch++
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
      const k = this.keys.get(d.keyId)
      // Written now, so no longer unflushed (charges of an earlier month stopped counting when it ended).
      if (k !== undefined && k.pendingMonth === monthStart(d.hour)) k.pendingUnits = Math.max(0, k.pendingUnits - d.units)
    }
    for (const total of totals) {
      const k = this.keys.get(total.keyId)
      if (k !== undefined && k.month === total.month) {
        k.units = total.units
        k.syncedAt = now
      }
    }
  }

  /** Takes in a total recorded outside the meter (an idempotent usage record). */
  observe (total: UsageTotal) {
    const k = this.keys.get(total.keyId)
    if (k !== undefined && k.month === total.month && total.units > k.units) k.units = total.units
  }

  stats (): MeterStats {
    return { pendingKeys: this.pending.size + (this.unsent?.deltas.length ?? 0), ...this.counters }
  }
}
