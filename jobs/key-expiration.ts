import type { JobContext, JobResult } from '../plugins/app/jobs/context.ts'
import { BATCH, DAY_MS } from './constants.ts'

/**
 * Marks keys past expiresAt as expired (verification already answers EXPIRED from expiresAt;
 * this makes lists and stats say so), notifies keys expiring within 7 days and keys whose
 * rotation is due. Notifications are deduplicated, so re-runs notify nobody twice.
 */
export async function keyExpiration (ctx: JobContext): Promise<JobResult> {
  const now = ctx.clock.now()
  let expired = 0
  for (;;) {
    const batch = await ctx.store.expireKeys(now, BATCH)
    expired += batch.length
    const owners = new Set(batch.map((k) => k.ownerId))
    for (const owner of owners) await ctx.cache.bumpGeneration(`keys:${owner}`)
    for (const key of batch) {
      await ctx.notifier.notify(key.ownerId, {
        type: 'expired', keyId: key.id, title: `${key.name} has expired`, detail: { expiresAt: new Date(key.expiresAt as number).toISOString() }, dedupeKey: `expired:${key.id}:${key.expiresAt}`
      })
    }
    if (batch.length < BATCH) break
  }

  let expiringSoon = 0
  let after = ''
  for (;;) {
    const batch = await ctx.store.keysExpiringBetween(now, now + 7 * DAY_MS, after, BATCH)
    for (const key of batch) {
      const created = await ctx.notifier.notify(key.ownerId, {
        type: 'expiring_soon', keyId: key.id, title: `${key.name} expires soon`, detail: { expiresAt: new Date(key.expiresAt as number).toISOString() }, dedupeKey: `expiring_soon:${key.id}:${key.expiresAt}`
      })
      if (created !== null) expiringSoon++
    }
    if (batch.length < BATCH) break
    after = batch[batch.length - 1]!.id
  }

  let rotationDue = 0
  after = ''
  for (;;) {
    const batch = await ctx.store.keysRotationDue(now, after, BATCH)
    for (const key of batch) {
      const created = await ctx.notifier.notify(key.ownerId, {
        type: 'rotation_due', keyId: key.id, title: `${key.name} is due for rotation`, detail: { rotationDueAt: new Date(key.rotationDueAt as number).toISOString(), version: key.version }, dedupeKey: `rotation_due:${key.id}:${key.version}`
      })
      if (created !== null) rotationDue++
    }
    if (batch.length < BATCH) break
    after = batch[batch.length - 1]!.id
  }
  return { expired, expiringSoon, rotationDue }
}
