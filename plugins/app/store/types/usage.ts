/** Usage of one key in one UTC hour, as the meter flushes it. */
export interface UsageDelta {
  ownerId: string
  keyId: string
  /** Start of the UTC hour, epoch ms. */
  hour: number
  units: number
  requests: number
  lastUsedAt: number
}

export interface UsageTotal { keyId: string, month: number, units: number, requests: number }
export interface UsagePoint { hour: number, units: number, requests: number }

/** Usage counters (hourly, daily, monthly) and the idempotency records of metered calls. */
export interface UsageStore {
  /**
   * Adds usage deltas (hourly and monthly counters, and lastUsedAt) and returns the new monthly
   * totals of the keys touched. Increments commute, so every process flushes only its own deltas.
   * A batch sent again under the same `batchId` (a flush retried after a failure whose outcome
   * was unknown) is counted once.
   */
  recordUsage (deltas: UsageDelta[], batchId?: string): Promise<UsageTotal[]>
  /**
   * Records usage once per idempotency key: a retry with the same key changes nothing and
   * answers duplicate: true.
   */
  recordUsageOnce (ownerId: string, idempotencyKey: string, delta: UsageDelta): Promise<{ duplicate: boolean, total: UsageTotal }>
  /** Monthly totals of the owner's keys for the month starting at `month` (all keys when keyIds is omitted). */
  monthlyUsage (ownerId: string, month: number, keyIds?: string[]): Promise<UsageTotal[]>
  /** Hourly usage of one key in [fromHour, toHour). */
  usageSeries (ownerId: string, keyId: string, fromHour: number, toHour: number): Promise<UsagePoint[]>
  usageDaily (ownerId: string, keyId: string, fromDay: number, toDay: number): Promise<UsagePoint[]>

  // Maintenance: system-wide and always in bounded batches (the jobs call these).
  /** Recomputes daily totals from hourly counters for the UTC days touching [fromHour, toHour); idempotent. */
  rollupDaily (fromHour: number, toHour: number): Promise<number>
  purgeUsageHourly (before: number, limit: number): Promise<number>
  purgeIdempotency (before: number, limit: number): Promise<number>
}
