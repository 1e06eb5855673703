import type { JobContext, JobResult } from '../plugins/app/jobs/context.ts'
import { purgeAccount } from '../plugins/app/store/shared.ts'
import { BATCH, DAY_MS } from './constants.ts'

async function drain (step: () => Promise<number>): Promise<number> {
  let total = 0
  for (;;) {
    const n = await step()
    total += n
    if (n < BATCH) return total
  }
}

/** Finishes the purges of accounts marked deleted (a purge cut short by a crash or an error resumes here). */
async function purgeDeletedAccounts (ctx: JobContext): Promise<number> {
  let total = 0
  for (const userId of await ctx.store.listDeletedUsers(BATCH)) total += await purgeAccount(ctx.store, userId, BATCH)
  return total
}

/**
 * Purges the data of accounts marked deleted, and what retention allows: revoked keys, hourly usage (daily and monthly totals stay),
 * expired sessions, idempotency records, old audit events (the chain keeps an anchor, so it
 * still verifies), old stats snapshots.
 */
export async function dataCleanup (ctx: JobContext): Promise<JobResult> {
  const now = ctx.clock.now()
  const r = ctx.config.retention
  const result: JobResult = {
    deletedAccountRows: await purgeDeletedAccounts(ctx),
    revokedKeys: await drain(() => ctx.store.purgeRevokedKeys(now - r.revokedKeyDays * DAY_MS, BATCH)),
    usageHours: await drain(() => ctx.store.purgeUsageHourly(now - r.hourlyUsageDays * DAY_MS, BATCH)),
    sessions: await drain(() => ctx.store.purgeSessions(now, BATCH)),
    idempotencyRecords: await drain(() => ctx.store.purgeIdempotency(now - DAY_MS, BATCH)),
    statsSnapshots: await ctx.store.purgeStatsSnapshots(now - r.statsDays * DAY_MS)
  }
  result.auditEvents = r.auditDays === 0 ? 0 : await drain(() => ctx.store.purgeAudit(now - r.auditDays * DAY_MS, BATCH))
  return result
}
