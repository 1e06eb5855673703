import type { Clock } from '../clock.ts'

/** What the alert rules look at, gathered every evaluation. */
export interface AlertInput {
  requests: number
  errors: number
  p99Ms: number
  eventLoopDelayMs: number
  heapUsedBytes: number
  heapLimitBytes: number
  redisConfigured: boolean
  redisReady: boolean
  storeOk: boolean
  queueBacklog: number
}

export interface AlertRule {
  name: string
  description: string
  /** The observed value and whether it breaks the rule. */
  check (input: AlertInput): { value: number, firing: boolean }
}

export interface AlertState {
  name: string
  description: string
  status: 'firing' | 'resolved'
  value: number
  since: string
  resolvedAt: string | null
}

export interface AlertThresholds {
  errorRate: number
  p99Ms: number
  eventLoopDelayMs: number
  heapRatio: number
  queueBacklog: number
  /** A condition must hold this long to raise, and be clear this long to resolve. */
  holdMs: number
}

export function defaultRules (t: AlertThresholds): AlertRule[] {
  return [
    {
      name: 'error_rate',
      description: `5xx answers above ${t.errorRate * 100}% of requests (at least 20 requests)`,
      check: (i) => {
        const rate = i.requests === 0 ? 0 : i.errors / i.requests
        return { value: rate, firing: i.requests >= 20 && rate > t.errorRate }
      }
    },
    { name: 'p99_latency', description: `p99 latency above ${t.p99Ms} ms`, check: (i) => ({ value: i.p99Ms, firing: i.requests > 0 && i.p99Ms > t.p99Ms }) },
    { name: 'event_loop_delay', description: `event-loop delay above ${t.eventLoopDelayMs} ms`, check: (i) => ({ value: i.eventLoopDelayMs, firing: i.eventLoopDelayMs > t.eventLoopDelayMs }) },
    {
      name: 'heap',
      description: `heap above ${t.heapRatio * 100}% of its limit`,
      check: (i) => ({ value: i.heapUsedBytes / i.heapLimitBytes, firing: i.heapUsedBytes / i.heapLimitBytes > t.heapRatio })
    },
    { name: 'redis_unreachable', description: 'Redis is configured but unreachable', check: (i) => ({ value: i.redisReady ? 0 : 1, firing: i.redisConfigured && !i.redisReady }) },
    { name: 'store_unreachable', description: 'the store does not answer', check: (i) => ({ value: i.storeOk ? 0 : 1, firing: !i.storeOk }) },
    { name: 'queue_backlog', description: `more than ${t.queueBacklog} jobs or deliveries waiting`, check: (i) => ({ value: i.queueBacklog, firing: i.queueBacklog > t.queueBacklog }) }
  ]
}

interface Track { firingSince: number | null, clearSince: number | null, open: AlertState | null }

/**
 * Raises each alert once and resolves it once. Hysteresis: a condition must hold for `holdMs`
 * before the alert is raised and be clear for `holdMs` before it is resolved, so a value
 * hovering at a threshold does not produce a storm of raise/resolve pairs.
 */
export class AlertEngine {
  private readonly tracks = new Map<string, Track>()
  private readonly recent: AlertState[] = []
  readonly transitions = { raised: 0, resolved: 0 }

  constructor (
    private readonly rules: AlertRule[],
    private readonly clock: Clock,
    private readonly holdMs: number,
    private readonly onChange: (alert: AlertState) => void
  ) {
    for (const rule of rules) this.tracks.set(rule.name, { firingSince: null, clearSince: null, open: null })
  }

  evaluate (input: AlertInput) {
    const now = this.clock.now()
    for (const rule of this.rules) {
      const track = this.tracks.get(rule.name) as Track
      const { value, firing } = rule.check(input)
      if (firing) {
        track.clearSince = null
        track.firingSince ??= now
        if (track.open !== null) track.open.value = value
        else if (now - track.firingSince >= this.holdMs) {
          track.open = { name: rule.name, description: rule.description, status: 'firing', value, since: new Date(track.firingSince).toISOString(), resolvedAt: null }
          this.transitions.raised++
          this.onChange({ ...track.open })
        }
      } else {
        track.firingSince = null
        if (track.open === null) continue
        track.clearSince ??= now
        if (now - track.clearSince >= this.holdMs) {
          const resolved: AlertState = { ...track.open, status: 'resolved', value, resolvedAt: new Date(now).toISOString() }
          track.open = null
          track.clearSince = null
          this.recent.unshift(resolved)
          this.recent.length = Math.min(this.recent.length, 50)
          this.transitions.resolved++
          this.onChange(resolved)
        }
      }
    }
  }

  open (): AlertState[] {
    return [...this.tracks.values()].flatMap((t) => (t.open === null ? [] : [{ ...t.open }]))
  }

  resolved (): AlertState[] {
    return [...this.recent]
  }
}
