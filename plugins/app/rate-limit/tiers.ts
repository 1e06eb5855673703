import type { Redis, Result } from 'ioredis'
import { LRUCache } from 'lru-cache'
import type { Clock } from '../clock.ts'

/**
 * Rate-limit tiers with progressive blocking. A client that exceeds a tier is blocked for
 * `blockMs`; each further violation within a day doubles the block, up to `maxBlockMs`. With
 * Redis the counts, blocks and strikes are shared by every process (one Lua script per hit); if
 * Redis cannot be reached the same rules run from process memory, so limits are never skipped.
 */

export interface Hit {
  /** Requests counted in the window (above `max` when refused). */
  current: number
  /** Milliseconds until the window resets, or until the block ends. */
  ttl: number
  blocked: boolean
  /** This hit started a block. */
  newBlock?: boolean
}

export interface BlockPolicy { blockMs: number, maxBlockMs: number }

const STRIKE_MEMORY_MS = 86_400_000

// KEYS: count, block, strikes. ARGV: window, max, blockMs, maxBlockMs, strikeMemoryMs.
const HIT_SCRIPT = `
local blocked = redis.call('PTTL', KEYS[2])
if blocked > 0 then
  return { tonumber(ARGV[2]) + 1, blocked, 1, 0 }
end
local current = redis.call('INCR', KEYS[1])
if current == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
if current > tonumber(ARGV[2]) then
  local strikes = redis.call('INCR', KEYS[3])
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
  local block = math.min(tonumber(ARGV[3]) * 2 ^ (strikes - 1), tonumber(ARGV[4]))
  redis.call('SET', KEYS[2], strikes, 'PX', math.floor(block))
  redis.call('DEL', KEYS[1])
  return { current, math.floor(block), 1, 1 }
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then ttl = tonumber(ARGV[1]) end
return { current, ttl, 0, 0 }
`

declare module 'ioredis' {
  interface RedisCommander<Context> {
    keywardTierHit (count: string, block: string, strikes: string, windowMs: number, max: number, blockMs: number, maxBlockMs: number, strikeMs: number): Result<[number, number, number, number], Context>
  }
}

interface Counter { count: number, windowEnds: number }
interface Penalty { blockedUntil: number, strikes: number, strikesExpire: number }

/**
 * How many clients the memory fallback remembers. Counters and penalties (blocks and strikes)
 * are kept apart: any client can create counters cheaply (one request from a new address), but a
 * penalty costs `max + 1` requests, so churning through counters never evicts a block.
 */
export const MEMORY_LIMITS = { counters: 200_000, penalties: 100_000 }

/** The same rules in process memory, with the injectable clock. */
export class MemoryTiers {
  private readonly counters = new LRUCache<string, Counter>({ max: MEMORY_LIMITS.counters })
  private readonly penalties = new LRUCache<string, Penalty>({ max: MEMORY_LIMITS.penalties })

  constructor (private readonly clock: Clock) {}

  hit (key: string, windowMs: number, max: number, policy: BlockPolicy): Hit {
    const now = this.clock.now()
    let penalty = this.penalties.get(key)
    if (penalty !== undefined && penalty.blockedUntil > now) return { current: max + 1, ttl: penalty.blockedUntil - now, blocked: true }
    let c = this.counters.get(key)
    if (c === undefined) {
      c = { count: 0, windowEnds: now + windowMs }
      this.counters.set(key, c)
    } else if (c.windowEnds <= now) {
      c.count = 0
      c.windowEnds = now + windowMs
    }
    c.count++
    if (c.count <= max) return { current: c.count, ttl: c.windowEnds - now, blocked: false }
    const current = c.count
    this.counters.delete(key)
    if (penalty === undefined) {
      penalty = { blockedUntil: 0, strikes: 0, strikesExpire: 0 }
      this.penalties.set(key, penalty)
    }
    if (penalty.strikesExpire <= now) penalty.strikes = 0
    penalty.strikes++
    penalty.strikesExpire = now + STRIKE_MEMORY_MS
    const block = Math.min(policy.blockMs * 2 ** (penalty.strikes - 1), policy.maxBlockMs)
    penalty.blockedUntil = now + block
    return { current, ttl: block, blocked: true, newBlock: true }
  }

  /** Clients remembered now: counters and penalties (each bounded by MEMORY_LIMITS). */
  get size () {
    return { counters: this.counters.size, penalties: this.penalties.size }
  }

  /** Clients blocked now, per key. */
  blocked (): Array<{ key: string, ttl: number }> {
    const now = this.clock.now()
    const out: Array<{ key: string, ttl: number }> = []
    for (const [key, p] of this.penalties.entries()) if (p.blockedUntil > now) out.push({ key, ttl: p.blockedUntil - now })
    return out
  }
}

export interface TierLimiterOptions {
  redis: Redis | null
  prefix: string
  clock: Clock
  policy: BlockPolicy
  /** Told when the shared store becomes unreachable or reachable again. */
  onFallback?: (active: boolean, err?: unknown) => void
}

/** Counts hits per tier and client, in Redis when it answers and in memory when it does not. */
export class TierLimiter {
  readonly memory: MemoryTiers
  private fallbackActive = false
  fallbackHits = 0
  refused = 0
  blocks = 0

  constructor (private readonly options: TierLimiterOptions) {
    this.memory = new MemoryTiers(options.clock)
    options.redis?.defineCommand('keywardTierHit', { numberOfKeys: 3, lua: HIT_SCRIPT })
  }

  get usingFallback () {
    return this.fallbackActive
  }

  private keys (tier: string, client: string) {
    const base = `${this.options.prefix}rl:${tier}:`
    return { count: `${base}c:${client}`, block: `${base}b:${client}`, strikes: `${base}s:${client}` }
  }

  private setFallback (active: boolean, err?: unknown) {
    if (active === this.fallbackActive) return
    this.fallbackActive = active
    this.options.onFallback?.(active, err)
  }

  private record (hit: Hit): Hit {
    if (hit.blocked) this.refused++
    if (hit.newBlock === true) this.blocks++
    return hit
  }

  /** One hit: from Redis when it is configured (a promise), else from process memory at once. */
  hit (tier: string, client: string, windowMs: number, max: number): Hit | Promise<Hit> {
    return this.options.redis === null ? this.hitMemory(tier, client, windowMs, max) : this.hitShared(this.options.redis, tier, client, windowMs, max)
  }

  private async hitShared (redis: Redis, tier: string, client: string, windowMs: number, max: number): Promise<Hit> {
    const { policy } = this.options
    const k = this.keys(tier, client)
    try {
      const [current, ttl, blocked, newBlock] = await redis.keywardTierHit(k.count, k.block, k.strikes, windowMs, max, policy.blockMs, policy.maxBlockMs, STRIKE_MEMORY_MS)
      this.setFallback(false)
      return this.record({ current, ttl, blocked: blocked === 1, newBlock: newBlock === 1 })
    } catch (err) {
      this.setFallback(true, err)
      this.fallbackHits++
    }
    return this.hitMemory(tier, client, windowMs, max)
  }

  private hitMemory (tier: string, client: string, windowMs: number, max: number): Hit {
    return this.record(this.memory.hit(`${tier}:${client}`, windowMs, max, this.options.policy))
  }

  /** Every client blocked now, by tier (shared store and this process's memory). */
  async blockedClients (): Promise<Array<{ tier: string, client: string, retryAfterSeconds: number }>> {
    const out = new Map<string, { tier: string, client: string, retryAfterSeconds: number }>()
    for (const { key, ttl } of this.memory.blocked()) {
      const [tier, ...rest] = key.split(':')
      out.set(key, { tier: tier as string, client: rest.join(':'), retryAfterSeconds: Math.ceil(ttl / 1000) })
    }
    const { redis, prefix } = this.options
    if (redis !== null && !this.fallbackActive) {
      try {
        let cursor = '0'
        let rounds = 0
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}rl:*:b:*`, 'COUNT', 500)
          cursor = next
          for (const key of keys) {
            const ttl = await redis.pttl(key)
            if (ttl <= 0) continue
            const rest = key.slice(`${prefix}rl:`.length)
            const tier = rest.slice(0, rest.indexOf(':'))
            const client = rest.slice(tier.length + 3)
            out.set(`${tier}:${client}`, { tier, client, retryAfterSeconds: Math.ceil(ttl / 1000) })
          }
        } while (cursor !== '0' && ++rounds < 100)
      } catch {
        this.setFallback(true)
      }
    }
    return [...out.values()]
  }
}
