import type { Redis, Result } from 'ioredis'
import { LRUCache } from 'lru-cache'
import type { KeyRateLimit } from '../store/types/index.ts'

export interface BucketResult {
  allowed: boolean
  /** Whole tokens left after this request. */
  remaining: number
  /** When the bucket will be full again (epoch ms). */
  resetAt: number
}

/** Capacity and refill rate of a key's bucket: `limit` per `windowMs` sustained, `burst` at once. */
function shape (limit: KeyRateLimit) {
  return { capacity: limit.burst ?? limit.limit, perMs: limit.limit / limit.windowMs }
}

function result (allowed: boolean, tokens: number, capacity: number, perMs: number, now: number): BucketResult {
  return { allowed, remaining: Math.floor(tokens), resetAt: Math.ceil(now + (capacity - tokens) / perMs) }
}

/** Token buckets in process memory (embedded mode, and the fallback when Redis is unreachable). */
export class MemoryBuckets {
  private readonly buckets = new LRUCache<string, { tokens: number, at: number }>({ max: 100_000 })

  take (id: string, limit: KeyRateLimit, now: number): BucketResult {
    const { capacity, perMs } = shape(limit)
    const bucket = this.buckets.get(id)
    let tokens = bucket === undefined ? capacity : Math.min(capacity, bucket.tokens + Math.max(0, now - bucket.at) * perMs)
    const allowed = tokens >= 1
    if (allowed) tokens -= 1
    this.buckets.set(id, { tokens, at: now })
    return result(allowed, tokens, capacity, perMs, now)
  }
}

// Refill, take one token if there is one, store, and expire the bucket once it would be full again.
const TAKE_SCRIPT = `
local capacity = tonumber(ARGV[1])
local perMs = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 't', 'a')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil then
  tokens = capacity
else
  tokens = math.min(capacity, tokens + math.max(0, now - at) * perMs)
end
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'a', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / perMs) + 1000)
return { allowed, tostring(tokens) }
`

declare module 'ioredis' {
  interface RedisCommander<Context> {
    keywardTakeToken (key: string, capacity: number, perMs: number, now: number): Result<[number, string], Context>
  }
}

/**
 * Token buckets shared by every process through one atomic Lua script. If Redis cannot be
 * reached the request is decided from process memory instead, never skipped.
 */
export class RedisBuckets {
  private readonly fallback = new MemoryBuckets()
  fallbacks = 0

  constructor (private readonly redis: Redis, private readonly prefix: string) {
    redis.defineCommand('keywardTakeToken', { numberOfKeys: 1, lua: TAKE_SCRIPT })
  }

  take (id: string, limit: KeyRateLimit, now: number): Promise<BucketResult> {
    const { capacity, perMs } = shape(limit)
    return this.redis.keywardTakeToken(`${this.prefix}bucket:${id}`, capacity, perMs, now).then(
      ([allowed, tokens]) => result(allowed === 1, Number(tokens), capacity, perMs, now),
      () => {
        this.fallbacks++
        return this.fallback.take(id, limit, now)
      })
  }
}
