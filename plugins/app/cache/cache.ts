import { randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import { LRUCache } from 'lru-cache'

/**
 * Two-layer cache: L1 an in-process LRU (bounded entries and TTL), L2 Redis when configured.
 * Per-scope generation counters make "drop everything of this user" one increment; deletions
 * and generation bumps are broadcast over Redis pub/sub so every process drops its L1 copy.
 * Concurrent misses for one key share one load. Callers must never cache secrets.
 */

/**
 * Carries invalidations between the processes of one machine when there is no Redis (the
 * cluster primary relays them between its workers).
 */
export interface CacheBus {
  publish (raw: string): void
  subscribe (onMessage: (raw: string) => void): void
  close (): void
}

export interface CacheOptions {
  redis: Redis | null
  /** A second connection for SUBSCRIBE (a subscribed connection cannot run other commands). */
  subscriber?: Redis | null
  /** Without Redis: the bus to the other processes, if any. */
  bus?: CacheBus | null
  prefix: string
  maxEntries?: number
  defaultTtlMs?: number
}

export interface LayerStats { hits: number, misses: number }

export interface CacheStats {
  l1: LayerStats & { size: number }
  l2: LayerStats & { enabled: boolean, errors: number }
  loads: number
  coalesced: number
  invalidationsReceived: number
}

interface Message { from: string, kind: 'del' | 'gen', key: string, gen?: number }

type Entry = { value: unknown }

/** What a miss hands to the L1 cache's fetchMethod: this caller's loader and options. */
interface Load { loader: () => Promise<unknown>, options: GetOptions<unknown> }

/** Sets a counter to ARGV[1] unless it is already higher; returns the counter. */
const RAISE_SCRIPT = `
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local wanted = tonumber(ARGV[1])
if current < wanted then
  redis.call('SET', KEYS[1], wanted)
  return wanted
end
return current`

export interface GetOptions<T> {
  ttlMs?: number
  /** A TTL chosen by the loaded value (for example a shorter one for negative results). */
  ttlFor?: (value: T) => number
  /** Also keep the value in Redis (default true). */
  l2?: boolean
}

export class TwoLayerCache {
  private readonly l1: LRUCache<string, Entry, Load>
  private readonly generations: LRUCache<string, number>
  private readonly redis: Redis | null
  private readonly subscriber: Redis | null
  private readonly bus: CacheBus | null
  private readonly prefix: string
  private readonly channel: string
  private readonly instanceId = randomBytes(8).toString('hex')
  private readonly defaultTtlMs: number
  private localGenerations = new Map<string, number>()
  private counters = { l1Hits: 0, l1Misses: 0, l2Hits: 0, l2Misses: 0, l2Errors: 0, loads: 0, coalesced: 0, received: 0 }

  constructor (options: CacheOptions) {
    this.redis = options.redis
    this.subscriber = options.subscriber ?? null
    this.bus = options.redis === null ? options.bus ?? null : null
    this.prefix = `${options.prefix}cache:`
    this.channel = `${options.prefix}cache-invalidate`
    this.defaultTtlMs = options.defaultTtlMs ?? 60_000
    this.l1 = new LRUCache<string, Entry, Load>({
      max: options.maxEntries ?? 50_000,
      ttl: this.defaultTtlMs,
      ttlAutopurge: false,
      // lru-cache runs one load per key for concurrent misses and caches nothing when it fails. A
      // key deleted (invalidated) while its load runs is not cached; its callers still get the value.
      fetchMethod: (key, _stale, { options: set, context }) => this.load(key, context, set),
      ignoreFetchAbort: true
    })
    // The last generation seen per scope: the fallback while Redis is unreachable.
    this.generations = new LRUCache({ max: options.maxEntries ?? 50_000 })
  }

  /** Starts listening for other processes' invalidations. */
  async start (): Promise<void> {
    this.bus?.subscribe((raw) => this.onMessage(raw))
    if (this.subscriber === null) return
    this.subscriber.on('message', (channel: string, raw: string) => {
      if (channel !== this.channel) return
      this.onMessage(raw)
    })
    await this.subscriber.subscribe(this.channel)
  }

  private onMessage (raw: string) {
    let message: Message
    try {
      message = JSON.parse(raw) as Message
    } catch {
      return
    }
    if (message.from === this.instanceId) return
    this.counters.received++
    if (message.kind === 'del') this.l1.delete(message.key)
    else if (message.kind === 'gen') {
      const known = this.generations.get(message.key)
      if (this.redis === null) {
        // Without Redis each process counts its own generations (a restarted one starts at 0):
        // a bump anywhere moves this process past every generation it has used for the scope.
        const local = Math.max(known ?? 0, this.localGenerations.get(message.key) ?? 0)
        this.generations.set(message.key, Math.max(local + 1, message.gen ?? 0))
      } else if (known === undefined || (message.gen ?? 0) > known) {
        this.generations.set(message.key, message.gen ?? 0)
      }
    }
  }

  private publish (message: Omit<Message, 'from'>) {
    if (this.redis === null) {
      this.bus?.publish(JSON.stringify({ ...message, from: this.instanceId }))
      return
    }
    this.redis.publish(this.channel, JSON.stringify({ ...message, from: this.instanceId })).catch(() => {
      this.counters.l2Errors++
    })
  }

  /**
   * The current generation of a scope (for example a user id); keys built with it die together.
   * With Redis the shared counter is read every time, so a bump in any process is seen by the
   * very next request anywhere; the last value seen stands in while Redis is unreachable.
   */
  async generation (scope: string): Promise<number> {
    if (this.redis !== null) {
      const key = `${this.prefix}gen:${scope}`
      try {
        const raw = await this.redis.get(key)
        let gen = raw === null ? 0 : Number(raw)
        const known = this.generations.get(scope) ?? 0
        if (gen < known) {
          // The counter went backwards: Redis lost it (a restart without persistence, an
          // eviction, a flush). Old generations would match L1 entries cached before a bump and
          // bring back what the bump invalidated (a revoked session), so move past every
          // generation this process has seen, in Redis too, for the other processes.
          gen = Number(await this.redis.eval(RAISE_SCRIPT, 1, key, known + 1))
        }
        this.generations.set(scope, gen)
        return gen
      } catch {
        this.counters.l2Errors++
      }
    }
    return this.generations.get(scope) ?? this.localGenerations.get(scope) ?? 0
  }

  /** Invalidates every key built with this scope's generation, in every process. */
  async bumpGeneration (scope: string): Promise<number> {
    let gen = Math.max(this.localGenerations.get(scope) ?? 0, this.generations.get(scope) ?? 0) + 1
    if (this.redis !== null) {
      try {
        gen = await this.redis.incr(`${this.prefix}gen:${scope}`)
      } catch {
        this.counters.l2Errors++
      }
    }
    this.localGenerations.set(scope, gen)
    this.generations.set(scope, gen)
    this.publish({ kind: 'gen', key: scope, gen })
    return gen
  }

  /** The L1 entry of a key, without waiting: for hot paths that can answer synchronously. */
  peek<T> (key: string): { value: T } | undefined {
    const hit = this.l1.get(key)
    if (hit !== undefined) this.counters.l1Hits++
    return hit as { value: T } | undefined
  }

  /** The cached value, or the loader's (run once for concurrent callers), cached for ttlMs. */
  async get<T> (key: string, loader: () => Promise<T>, options: GetOptions<T> = {}): Promise<T> {
    const hit = this.l1.get(key)
    if (hit !== undefined) {
      this.counters.l1Hits++
      return hit.value as T
    }
    this.counters.l1Misses++
    const status: LRUCache.Status<string, Entry, Load> = {}
    const load = this.l1.forceFetch(key, { context: { loader, options } as Load, ttl: options.ttlMs ?? this.defaultTtlMs, status })
    if (status.fetch === 'inflight') this.counters.coalesced++
    return (await load).value as T
  }

  /** L2, then the loader; `set.ttl` is the TTL lru-cache gives the L1 entry. */
  private async load (key: string, { loader, options }: Load, set: { ttl?: number }): Promise<Entry> {
    const useL2 = options.l2 ?? true
    const ttlMs = options.ttlMs ?? this.defaultTtlMs
    if (useL2 && this.redis !== null) {
      try {
        const raw = await this.redis.get(this.prefix + key)
        if (raw !== null) {
          this.counters.l2Hits++
          return { value: JSON.parse(raw) }
        }
        this.counters.l2Misses++
      } catch {
        this.counters.l2Errors++
      }
    }
    this.counters.loads++
    const value = await loader()
    if (options.ttlFor !== undefined) set.ttl = options.ttlFor(value)
    if (useL2 && this.redis !== null && value !== undefined) {
      this.redis.set(this.prefix + key, JSON.stringify(value), 'PX', ttlMs).catch(() => { this.counters.l2Errors++ })
    }
    return { value }
  }

  /** Drops a key from both layers here and from L1 in every other process. */
  async delete (key: string): Promise<void> {
    this.l1.delete(key)
    if (this.redis !== null) {
      try {
        await this.redis.del(this.prefix + key)
      } catch {
        this.counters.l2Errors++
      }
    }
    this.publish({ kind: 'del', key })
  }

  stats (): CacheStats {
    const c = this.counters
    return {
      l1: { hits: c.l1Hits, misses: c.l1Misses, size: this.l1.size },
      l2: { enabled: this.redis !== null, hits: c.l2Hits, misses: c.l2Misses, errors: c.l2Errors },
      loads: c.loads,
      coalesced: c.coalesced,
      invalidationsReceived: c.received
    }
  }

  /** Drops expired L1 entries (the cache-cleanup job calls this). */
  purgeStale (): number {
    const before = this.l1.size
    this.l1.purgeStale()
    return before - this.l1.size
  }

  async stop (): Promise<void> {
    this.l1.clear()
    this.bus?.close()
    if (this.subscriber !== null) await this.subscriber.unsubscribe(this.channel).catch(() => {})
  }
}
