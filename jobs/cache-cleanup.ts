import type { JobContext, JobResult } from '../plugins/app/jobs/context.ts'

/**
 * Purges stale L1 entries and removes Redis cache entries orphaned by a generation bump (their
 * key names an older generation than the scope's current one). SCAN only, never FLUSHDB.
 */
export async function cacheCleanup (ctx: JobContext): Promise<JobResult> {
  const purgedL1 = ctx.cache.purgeStale()
  let scanned = 0
  let removed = 0
  const redis = ctx.redis
  if (redis !== null) {
    const prefix = `${ctx.config.redis?.prefix ?? 'kw:'}cache:`
    const generations = new Map<string, number>()
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}keys:*`, 'COUNT', 500)
      cursor = next
      scanned += keys.length
      const stale: string[] = []
      for (const key of keys) {
        // keys:list:<owner>:<gen>:... and keys:stats:<owner>:<gen>
        const [, , owner, gen] = key.slice(prefix.length).split(':')
        if (owner === undefined || gen === undefined) continue
        let current = generations.get(owner)
        if (current === undefined) {
          current = await ctx.cache.generation(`keys:${owner}`)
          generations.set(owner, current)
        }
        if (Number(gen) < current) stale.push(key)
      }
      if (stale.length > 0) removed += await redis.del(...stale)
    } while (cursor !== '0')
  }
  return { purgedL1, scanned, removed, stats: ctx.cache.stats() }
}
