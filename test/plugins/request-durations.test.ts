import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { AggregatorRegistry, Histogram, Registry } from 'prom-client'
import { RequestDurations } from '../../plugins/app/metrics/request-durations.ts'

const BOUNDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
const OBSERVED: Array<[string, string, string, number]> = [
  ['POST', '/api/keys/verify', '2xx', 0.0004],
  ['POST', '/api/keys/verify', '2xx', 0.001],
  ['POST', '/api/keys/verify', '2xx', 0.0031],
  ['POST', '/api/keys/verify', '4xx', 7.5],
  ['GET', '/api/health', '2xx', 0.02],
  ['GET', 'unmatched', '4xx', 0.5]
]

/** The same observations in ours and in prom-client's own Histogram, each in a registry of its own. */
function both () {
  const ours = new Registry()
  const durations = new RequestDurations(BOUNDS, ours)
  const theirs = new Registry()
  const histogram = new Histogram({ name: durations.name, help: durations.help, labelNames: ['method', 'route', 'status_class'], buckets: BOUNDS, registers: [theirs] })
  const series = new Map<string, ReturnType<RequestDurations['series']>>()
  for (const [method, route, statusClass, seconds] of OBSERVED) {
    const id = `${method} ${route} ${statusClass}`
    if (!series.has(id)) series.set(id, durations.series(method, route, statusClass))
    durations.observe(series.get(id)!, seconds)
    histogram.labels(method, route, statusClass).observe(seconds)
  }
  return { ours, theirs, durations }
}

describe('the request-duration histogram', () => {
  it('exposes exactly what prom-client\'s Histogram exposes for the same observations', async () => {
    const { ours, theirs } = both()
    assert.equal(await ours.metrics(), await theirs.metrics())
  })

  it('adds up across cluster workers as prom-client\'s does, and resets to zero', async () => {
    const a = both()
    const b = both()
    const ours = AggregatorRegistry.aggregate([await a.ours.getMetricsAsJSON(), await b.ours.getMetricsAsJSON()])
    const theirs = AggregatorRegistry.aggregate([await a.theirs.getMetricsAsJSON(), await b.theirs.getMetricsAsJSON()])
    assert.equal(await ours.metrics(), await theirs.metrics())
    assert.match(await ours.metrics(), /_count\{method="POST",route="\/api\/keys\/verify",status_class="2xx"\} 6/)
    a.ours.resetMetrics()
    assert.match(await a.ours.metrics(), /_count\{method="POST",route="\/api\/keys\/verify",status_class="2xx"\} 0/)
  })
})
