import { HOUR_MS, hourStart, monthStart } from '../plugins/app/store/shared.ts'
import type { JobContext, JobResult } from '../plugins/app/jobs/context.ts'
import { BATCH } from './constants.ts'

/**
 * Folds hourly usage of the last day into daily totals (recomputed, so re-runs change nothing)
 * and raises quota notifications at 80% and 100% of a monthly limit, once per key and month.
 */
export async function usageRollup (ctx: JobContext): Promise<JobResult> {
  const now = ctx.clock.now()
  const to = hourStart(now) + HOUR_MS
  const days = await ctx.store.rollupDaily(to - 26 * HOUR_MS, to)
  const month = monthStart(now)
  const monthLabel = new Date(month).toISOString().slice(0, 7)
  let checked = 0
  let notified = 0
  let after = ''
  for (;;) {
    const keys = await ctx.store.keysWithMonthlyLimit(after, BATCH)
    if (keys.length === 0) break
    after = keys[keys.length - 1]!.id
    const byOwner = new Map<string, typeof keys>()
    for (const key of keys) byOwner.set(key.ownerId, [...(byOwner.get(key.ownerId) ?? []), key])
    for (const [ownerId, owned] of byOwner) {
      const totals = new Map((await ctx.store.monthlyUsage(ownerId, month, owned.map((k) => k.id))).map((t) => [t.keyId, t.units]))
      for (const key of owned) {
        checked++
        const used = totals.get(key.id) ?? 0
        const limit = key.monthlyLimit as number
        for (const [threshold, type] of [[1, 'quota_100'], [0.8, 'quota_80']] as const) {
          if (used < limit * threshold) continue
          const created = await ctx.notifier.notify(ownerId, {
            type,
            keyId: key.id,
            title: `${key.name} has used ${Math.round(threshold * 100)}% of its monthly limit`,
            detail: { used, limit, month: monthLabel },
            dedupeKey: `${type}:${key.id}:${monthLabel}`
          })
          if (created !== null) notified++
        }
      }
    }
    if (keys.length < BATCH) break
  }
  return { dayRows: days, checked, notified }
}
