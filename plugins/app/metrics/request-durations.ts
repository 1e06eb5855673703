import type { Registry } from 'prom-client'

/** One label set's counts: `buckets[i]` holds observations in (bounds[i-1], bounds[i]], the last one above every bound. */
export interface DurationSeries {
  readonly labels: { method: string, route: string, status_class: string }
  readonly buckets: number[]
  sum: number
  count: number
}

const NAME = 'keyward_http_request_duration_seconds'

/**
 * The request-duration histogram, exposed exactly as a prom-client Histogram would be (`_bucket`
 * with cumulative `le`, `_sum`, `_count`; summed across cluster workers). prom-client's own
 * labelled child validates and hashes its labels on every observation; here the request hooks
 * hold each route's series and an observation is a few additions.
 */
export class RequestDurations {
  readonly name = NAME
  readonly help = 'Request duration by route and status class (its _count is the request count)'
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  private readonly all: DurationSeries[] = []

  constructor (private readonly bounds: readonly number[], registry: Registry) {
    registry.registerMetric(this as never)
  }

  /** A new series; callers keep it (one per route, method and status class). */
  series (method: string, route: string, statusClass: string): DurationSeries {
    const series = { labels: { method, route, status_class: statusClass }, buckets: new Array<number>(this.bounds.length + 1).fill(0), sum: 0, count: 0 }
    this.all.push(series)
    return series
  }

  observe (series: DurationSeries, seconds: number) {
    let i = 0
    while (i < this.bounds.length && seconds > (this.bounds[i] as number)) i++
    series.buckets[i] = (series.buckets[i] as number) + 1
    series.sum += seconds
    series.count++
  }

  /** What prom-client's registry reads at scrape time. */
  get () {
    const values: Array<{ labels: Record<string, string | number>, value: number, metricName: string }> = []
    for (const s of this.all) {
      let cumulative = 0
      for (let i = 0; i <= this.bounds.length; i++) {
        cumulative += s.buckets[i] as number
        values.push({ labels: { le: i < this.bounds.length ? (this.bounds[i] as number) : '+Inf', ...s.labels }, value: cumulative, metricName: `${NAME}_bucket` })
      }
      values.push({ labels: s.labels, value: s.sum, metricName: `${NAME}_sum` })
      values.push({ labels: s.labels, value: s.count, metricName: `${NAME}_count` })
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator }
  }

  reset () {
    for (const s of this.all) {
      s.buckets.fill(0)
      s.sum = 0
      s.count = 0
    }
  }
}
