/**
 * Request figures per minute: the live numbers of /api/system/stats, the in-memory 24-hour
 * history, and the input of the alert rules. Recording a request is a few additions.
 */

/** Upper bounds (ms) of the latency buckets; percentiles are read off them. */
export const LATENCY_BUCKETS_MS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, Infinity]

export interface MinuteFigures {
  /** Start of the minute (epoch ms). */
  at: number
  requests: number
  errors: number
  clientErrors: number
  slow: number
  p50Ms: number
  p95Ms: number
  p99Ms: number
  rateLimited: number
  eventLoopDelayMs: number
  heapUsedBytes: number
  rssBytes: number
  cacheHitRatio: number | null
}

export interface Gauges { eventLoopDelayMs: number, heapUsedBytes: number, rssBytes: number, cacheHitRatio: number | null }

function percentile (buckets: number[], total: number, q: number): number {
  if (total === 0) return 0
  const target = total * q
  let seen = 0
  for (let i = 0; i < buckets.length; i++) {
    seen += buckets[i] as number
    if (seen >= target) {
      const bound = LATENCY_BUCKETS_MS[i] as number
      return bound === Infinity ? (LATENCY_BUCKETS_MS[i - 1] as number) : bound
    }
  }
  return LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.length - 2] as number
}

export class MinuteWindow {
  private current: { at: number, requests: number, errors: number, clientErrors: number, slow: number, rateLimited: number, buckets: number[] }
  private readonly history: MinuteFigures[] = []

  constructor (private readonly now: () => number, private readonly keepMinutes = 24 * 60) {
    this.current = this.fresh(this.minute(now()))
  }

  private minute (ms: number) {
    return ms - (ms % 60_000)
  }

  private fresh (at: number) {
    return { at, requests: 0, errors: 0, clientErrors: 0, slow: 0, rateLimited: 0, buckets: LATENCY_BUCKETS_MS.map(() => 0) }
  }

  record (status: number, durationMs: number, slow: boolean) {
    const c = this.current
    c.requests++
    if (status >= 500) c.errors++
    else if (status === 429) c.rateLimited++
    else if (status >= 400) c.clientErrors++
    if (slow) c.slow++
    let i = 0
    while (durationMs > (LATENCY_BUCKETS_MS[i] as number)) i++
    c.buckets[i] = (c.buckets[i] as number) + 1
  }

  private figures (c: typeof this.current, gauges: Gauges): MinuteFigures {
    return {
      at: c.at,
      requests: c.requests,
      errors: c.errors,
      clientErrors: c.clientErrors,
      slow: c.slow,
      rateLimited: c.rateLimited,
      p50Ms: percentile(c.buckets, c.requests, 0.5),
      p95Ms: percentile(c.buckets, c.requests, 0.95),
      p99Ms: percentile(c.buckets, c.requests, 0.99),
      ...gauges
    }
  }

  /** Closes the minute if it has ended (called every few seconds with the process gauges). */
  roll (gauges: Gauges) {
    const minute = this.minute(this.now())
    if (minute <= this.current.at) return
    this.history.push(this.figures(this.current, gauges))
    if (this.history.length > this.keepMinutes) this.history.splice(0, this.history.length - this.keepMinutes)
    this.current = this.fresh(minute)
  }

  /** The minute in progress so far. */
  live (gauges: Gauges): MinuteFigures {
    return this.figures(this.current, gauges)
  }

  /** The last complete minute, or the live one when none has completed yet. */
  last (gauges: Gauges): MinuteFigures {
    return this.history[this.history.length - 1] ?? this.live(gauges)
  }

  range (from: number, to: number): MinuteFigures[] {
    return this.history.filter((m) => m.at >= from && m.at < to)
  }
}
