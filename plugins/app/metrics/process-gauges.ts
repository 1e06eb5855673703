import { monitorEventLoopDelay } from 'node:perf_hooks'
import { getHeapStatistics } from 'node:v8'
import type { TwoLayerCache } from '../cache/cache.ts'
import type { Gauges } from './window.ts'

/** This process's figures that go with each minute: event-loop delay, memory, cache hit ratio. */
export class ProcessGauges {
  readonly heapLimitBytes = getHeapStatistics().heap_size_limit
  private readonly delay = monitorEventLoopDelay({ resolution: 20 })

  constructor (private readonly cache: Pick<TwoLayerCache, 'stats'>) {
    this.delay.enable()
  }

  read (): Gauges {
    const memory = process.memoryUsage()
    const cache = this.cache.stats()
    const lookups = cache.l1.hits + cache.l1.misses
    return {
      eventLoopDelayMs: this.delay.count > 0 ? this.delay.percentile(99) / 1e6 : 0,
      heapUsedBytes: memory.heapUsed,
      rssBytes: memory.rss,
      cacheHitRatio: lookups === 0 ? null : cache.l1.hits / lookups
    }
  }

  /** Starts a new event-loop delay sample (after each alert evaluation). */
  resetDelay () {
    this.delay.reset()
  }

  stop () {
    this.delay.disable()
  }
}
