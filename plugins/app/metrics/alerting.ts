import { hkdfSync } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { deliver } from '../notifications/webhooks.ts'
import { AlertEngine, defaultRules, type AlertState } from './alerts.ts'
import type { ProcessGauges } from './process-gauges.ts'
import type { MetricsRegistry } from './registry.ts'
import type { MinuteWindow } from './window.ts'

const EVALUATION_INTERVAL_MS = 10_000

/** Logs each alert transition and, when ALERT_WEBHOOK_URL is set, POSTs it signed like user webhooks. */
function announcer (fastify: FastifyInstance, metrics: MetricsRegistry) {
  const { config } = fastify
  const alertKey = Buffer.from(hkdfSync('sha256', config.keys.hashSecret, 'keyward', 'alert-webhooks', 32)).toString('base64url')
  const send = (alert: AlertState) => {
    if (config.alerts.webhookUrl === undefined) return
    const body = JSON.stringify({ type: 'alert', ...alert })
    deliver(config.alerts.webhookUrl, body, config.alerts.webhookSecret ?? alertKey, {
      allowPrivate: config.webhooks.allowPrivate, timeoutMs: config.webhooks.timeoutMs, eventId: `alert:${alert.name}:${alert.status}:${alert.since}`
    }).catch((err) => fastify.log.warn({ err: (err as Error).message, alert: alert.name }, 'alert webhook failed'))
  }
  return (alert: AlertState) => {
    metrics.alertTransitions.inc({ alert: alert.name, status: alert.status })
    if (alert.status === 'firing') fastify.log.error({ alert }, `alert raised: ${alert.name}`)
    else fastify.log.warn({ alert }, `alert resolved: ${alert.name}`)
    send(alert)
  }
}

/**
 * Alerting: every 10 s the minute window rolls and the rules look at the last minute, the process
 * gauges and the health report. Stops with the app.
 */
export function startAlerting (fastify: FastifyInstance, metrics: MetricsRegistry, window: MinuteWindow, gauges: ProcessGauges): AlertEngine {
  const { config } = fastify
  const alerts = new AlertEngine(defaultRules(config.alerts.thresholds), fastify.clock, config.alerts.thresholds.holdMs, announcer(fastify, metrics))
  async function evaluate () {
    const g = gauges.read()
    window.roll(g)
    const last = window.last(g)
    const health = await fastify.health.report()
    alerts.evaluate({
      requests: last.requests,
      errors: last.errors,
      p99Ms: last.p99Ms,
      eventLoopDelayMs: g.eventLoopDelayMs,
      heapUsedBytes: g.heapUsedBytes,
      heapLimitBytes: gauges.heapLimitBytes,
      redisConfigured: fastify.redis !== null,
      redisReady: fastify.redis?.status === 'ready',
      storeOk: health.store.ok,
      queueBacklog: metrics.queueBacklog
    })
    gauges.resetDelay()
  }
  const timer = setInterval(() => { evaluate().catch((err) => fastify.log.error({ err }, 'alert evaluation failed')) }, EVALUATION_INTERVAL_MS)
  timer.unref()
  fastify.addHook('onClose', async () => { clearInterval(timer) })
  return alerts
}
