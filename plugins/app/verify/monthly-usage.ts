import type { Redis, Result } from 'ioredis'

export interface MonthlyCharge {
  allowed: boolean
  /** Units used this month before this call. */
  used: number
}

// Check and charge in one step. The counter never stays below what the calling process knows
// (the store's total plus its unflushed charges), which folds in anything charged while Redis
// was unreachable. It expires a day after the month ends.
const CHARGE_SCRIPT = `
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local known = tonumber(ARGV[3])
if known > used then used = known end
local cost = tonumber(ARGV[1])
if used + cost > tonumber(ARGV[2]) then
  return { 0, used }
end
redis.call('SET', KEYS[1], used + cost, 'PX', ARGV[4])
return { 1, used }
`
const DAY_MS = 86_400_000

declare module 'ioredis' {
  interface RedisCommander<Context> {
    keywardChargeMonth (key: string, cost: number, limit: number, known: number, ttlMs: number): Result<[number, number], Context>
  }
}

/**
 * Monthly limits shared by every instance: one atomic script per call on a key with a limit, so
 * N instances never grant more than the limit together. The store is still written behind by
 * the meter. Null when Redis is unreachable: the caller decides from process memory instead.
 */
export class RedisMonthlyUsage {
  fallbacks = 0

  constructor (private readonly redis: Redis, private readonly prefix: string) {
    redis.defineCommand('keywardChargeMonth', { numberOfKeys: 1, lua: CHARGE_SCRIPT })
  }

  charge (keyId: string, month: number, nextMonth: number, cost: number, limit: number, known: number, now: number): Promise<MonthlyCharge | null> {
    return this.redis.keywardChargeMonth(`${this.prefix}usage:${keyId}:${month}`, cost, limit, known, nextMonth - now + DAY_MS).then(
      ([allowed, used]) => ({ allowed: allowed === 1, used }),
      () => {
        this.fallbacks++
        return null
      })
  }
}
