import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer as netServer } from 'node:net'
import { describe, it } from 'node:test'
import { AlertEngine, defaultRules, type AlertInput, type AlertState } from '../../plugins/app/metrics/alerts.ts'
import { bearerMatches } from '../../plugins/app/metrics/listener.ts'
import { verifySignature } from '../../plugins/app/notifications/webhooks.ts'
import { createTestApp, ManualClock, registerUser } from '../helpers/app.ts'
import { onScopeEnd } from '../helpers/scope.ts'
import { startReceiver } from '../helpers/server.ts'
import { until } from '../helpers/until.ts'

const TOKEN = 'metrics-token-0123456789abcdef'

function metricValue (text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`)
  let total = 0
  let found = false
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue
    if (!wanted.every((w) => line.includes(w))) continue
    total += Number(line.slice(line.lastIndexOf(' ') + 1))
    found = true
  }
  return found ? total : NaN
}

describe('/metrics', () => {
  it('is served on the API port only with METRICS_TOKEN, as Prometheus text', async (ctx) => {
    const off = await createTestApp(ctx)
    const on = await createTestApp(ctx, { METRICS_TOKEN: TOKEN })
    assert.equal((await off.app.inject({ method: 'GET', url: '/metrics' })).statusCode, 404)
    assert.equal((await on.app.inject({ method: 'GET', url: '/metrics' })).statusCode, 401)
    assert.equal((await on.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer wrong-token-000000000' } })).statusCode, 401)
    const ok = await on.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } })
    assert.equal(ok.statusCode, 200)
    assert.match(String(ok.headers['content-type']), /^text\/plain/)
    assert.match(ok.body, /# TYPE keyward_http_request_duration_seconds histogram/)
    assert.match(ok.body, /keyward_process_resident_memory_bytes/)
    assert.match(ok.body, /keyward_nodejs_gc_duration_seconds/)
    assert.match(ok.body, /keyward_nodejs_eventloop_lag_seconds/)
  })

  it('with METRICS_PORT it is served there and not on the API port', async (ctx) => {
    const probe = netServer().listen(0, '127.0.0.1')
    await once(probe, 'listening')
    const port = (probe.address() as { port: number }).port
    probe.close()
    const t = await createTestApp(ctx, { METRICS_PORT: String(port), HOST: '127.0.0.1' })
    assert.equal((await t.app.inject({ method: 'GET', url: '/metrics' })).statusCode, 404)
    const res = await fetch(`http://127.0.0.1:${port}/metrics`)
    assert.equal(res.status, 200)
    assert.match(await res.text(), /keyward_http_requests_in_flight/)
  })

  it('the METRICS_PORT listener answers everything but a good scrape in the one error shape', async (ctx) => {
    const probe = netServer().listen(0, '127.0.0.1')
    await once(probe, 'listening')
    const port = (probe.address() as { port: number }).port
    probe.close()
    await once(probe, 'close')
    await createTestApp(ctx, { METRICS_PORT: String(port), METRICS_TOKEN: TOKEN })
    const shape = async (res: Response, status: number, code: string) => {
      assert.equal(res.status, status)
      const body = await res.json() as Record<string, unknown>
      assert.deepEqual(Object.keys(body).sort(), ['code', 'error', 'message', 'requestId', 'statusCode'])
      assert.equal(body.code, code)
      assert.match(String(body.requestId), /^[0-9a-f-]{36}$/)
    }
    await shape(await fetch(`http://127.0.0.1:${port}/nope`), 404, 'NOT_FOUND')
    await shape(await fetch(`http://127.0.0.1:${port}/metrics`), 401, 'UNAUTHORIZED')
    await shape(await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${TOKEN}x` } }), 401, 'UNAUTHORIZED')
    await shape(await fetch(`http://127.0.0.1:${port}/%E0%A4%A`), 400, 'BAD_URL')
    const ok = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })
    assert.equal(ok.status, 200)
    assert.match(await ok.text(), /keyward_http_requests_in_flight/)
  })

  it('the token is compared whole, whatever the lengths (hashed, then compared in constant time)', () => {
    assert.equal(bearerMatches(`Bearer ${TOKEN}`, TOKEN), true)
    for (const header of [undefined, '', TOKEN, `bearer ${TOKEN}`, `Bearer ${TOKEN.slice(0, -1)}`, `Bearer ${TOKEN}0`, `Bearer ${TOKEN.slice(0, -1)}X`, 'Bearer ']) {
      assert.equal(bearerMatches(header, TOKEN), false, String(header))
    }
  })

  it('each metric moves when its event happens, and none carries key material or emails', async (ctx) => {
    const t = await createTestApp(ctx, { METRICS_TOKEN: TOKEN, SLOW_REQUEST_MS: '1', GENERAL_RATE_LIMIT_MAX: '3', PASSWORD_HASH_COST: '12' })
    const scrape = async () => (await t.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } })).body
    const before = await scrape()
    const user = await registerUser(t.app, { email: 'distinctive.person@example.com' })
    const created = await t.app.inject({ method: 'POST', url: '/api/keys', headers: user.headers, payload: { kind: 'issued', name: 'metered' } })
    const secret = created.json().secret as string
    for (const key of [secret, 'kw_bad']) await t.app.inject({ method: 'POST', url: '/api/keys/verify', headers: user.headers, payload: { key } })
    await t.app.inject({ method: 'GET', url: `/api/no-such-route/${secret}` })
    for (let i = 0; i < 5; i++) await t.app.inject({ method: 'GET', url: '/api/nope', remoteAddress: '203.0.113.50' })
    await t.app.inject({ method: 'GET', url: '/api/keys', headers: user.headers })
    await t.app.inject({ method: 'GET', url: '/api/keys', headers: user.headers })
    const after = await scrape()

    const count = 'keyward_http_request_duration_seconds_count'
    assert.ok(metricValue(after, count, { route: '/api/keys/verify', status_class: '2xx' }) >= 2)
    assert.ok(metricValue(after, count, { route: '/api/auth/register' }) >= 1)
    assert.ok(metricValue(after, count, { status_class: '4xx' }) >= 1)
    // Requests no route matched count under one label (never their path: it held a secret), 404s and 429s alike.
    assert.equal(metricValue(after, count, { route: 'unmatched', status_class: '4xx' }), 6)
    assert.equal(metricValue(after, count, { route: '/api/keys', method: 'GET', status_class: '2xx' }), 2)
    // Every request counted in was counted out: only the scrape itself is in flight.
    assert.equal(metricValue(after, 'keyward_http_requests_in_flight'), 1)
    assert.ok(metricValue(after, 'keyward_http_slow_requests_total', { route: '/api/auth/register' }) >= 1, 'registration with scrypt is over 1 ms')
    assert.ok(t.logs.text().includes('"msg":"slow request"'))
    assert.equal(metricValue(after, 'keyward_verifications_total', { code: 'VALID' }), 1)
    assert.equal(metricValue(after, 'keyward_verifications_total', { code: 'MALFORMED' }), 1)
    assert.ok(metricValue(after, 'keyward_rate_limit_total', { event: 'refused' }) > (metricValue(before, 'keyward_rate_limit_total', { event: 'refused' }) || 0))
    assert.ok(metricValue(after, 'keyward_cache_requests_total', { layer: 'l1', result: 'hit' }) >= 1)
    assert.ok(metricValue(after, 'keyward_store_operation_duration_seconds_count', { operation: 'getUser' }) >= 1)
    assert.equal(metricValue(after, 'keyward_redis_up'), 0)

    for (const forbidden of [secret, 'distinctive.person@example.com', user.accessToken, user.user.id]) {
      assert.equal(after.includes(forbidden), false, `metrics contain ${forbidden.slice(0, 10)}…`)
    }
  })
})

describe('alerting', () => {
  const base: AlertInput = { requests: 100, errors: 0, p99Ms: 20, eventLoopDelayMs: 5, heapUsedBytes: 10, heapLimitBytes: 100, redisConfigured: false, redisReady: false, storeOk: true, queueBacklog: 0 }
  const thresholds = { errorRate: 0.05, p99Ms: 500, eventLoopDelayMs: 200, heapRatio: 0.8, queueBacklog: 1000, holdMs: 60_000 }

  it('raises once after the condition holds, ignores flapping, resolves once after it clears (hysteresis)', () => {
    const clock = new ManualClock(0)
    const changes: AlertState[] = []
    const engine = new AlertEngine(defaultRules(thresholds), clock, 60_000, (a) => changes.push(a))
    const failing = { ...base, errors: 10 }
    engine.evaluate(failing)
    clock.advance(30_000)
    engine.evaluate(failing)
    assert.equal(changes.length, 0, 'not before the condition has held for a minute')
    clock.advance(30_000)
    engine.evaluate(failing)
    assert.deepEqual(changes.map((c) => [c.name, c.status]), [['error_rate', 'firing']])
    for (let i = 0; i < 6; i++) {
      clock.advance(10_000)
      engine.evaluate(i % 2 === 0 ? base : failing)
    }
    assert.equal(changes.length, 1, 'flapping around the threshold changes nothing')
    assert.equal(engine.open().length, 1)
    clock.advance(10_000)
    engine.evaluate(base)
    clock.advance(60_000)
    engine.evaluate(base)
    assert.deepEqual(changes.map((c) => [c.name, c.status]), [['error_rate', 'firing'], ['error_rate', 'resolved']])
    assert.equal(engine.open().length, 0)
    assert.equal(engine.resolved()[0]?.name, 'error_rate')
    engine.evaluate(base)
    assert.equal(changes.length, 2)
  })

  it('covers latency, event-loop delay, heap, Redis, store and backlog', () => {
    const clock = new ManualClock(0)
    const changes: AlertState[] = []
    const engine = new AlertEngine(defaultRules({ ...thresholds, holdMs: 0 }), clock, 0, (a) => changes.push(a))
    engine.evaluate({ ...base, p99Ms: 900, eventLoopDelayMs: 300, heapUsedBytes: 90, redisConfigured: true, redisReady: false, storeOk: false, queueBacklog: 5000 })
    assert.deepEqual(changes.map((c) => c.name).sort(), ['event_loop_delay', 'heap', 'p99_latency', 'queue_backlog', 'redis_unreachable', 'store_unreachable'])
  })

  it('is logged, counted and sent signed to ALERT_WEBHOOK_URL', async (ctx) => {
    const receiver = await startReceiver('/alerts')
    onScopeEnd(ctx, receiver.close)
    const { received, url } = receiver
    const clock = new ManualClock()
    const t = await createTestApp(ctx, { METRICS_TOKEN: TOKEN, ALERT_WEBHOOK_URL: url, ALERT_WEBHOOK_SECRET: 'alert-secret-0123456789', WEBHOOK_ALLOW_PRIVATE: 'true', ALERT_HOLD_MS: '0' }, { clock })
    t.app.metrics.alerts.evaluate({ ...base, storeOk: false })
    await until(() => received.length > 0, 1000, 'the alert reaches ALERT_WEBHOOK_URL')
    assert.equal(received.length, 1)
    const alert = JSON.parse(received[0]!.body)
    assert.deepEqual([alert.type, alert.name, alert.status], ['alert', 'store_unreachable', 'firing'])
    assert.ok(verifySignature('alert-secret-0123456789', received[0]!.body, received[0]!.signature, Math.floor(Date.now() / 1000)))
    assert.ok(t.logs.text().includes('alert raised: store_unreachable'))
    const text = (await t.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } })).body
    assert.equal(metricValue(text, 'keyward_alerts_total', { alert: 'store_unreachable', status: 'firing' }), 1)
  })
})

describe('system statistics', () => {
  it('reports the live figures and keeps a per-minute history (admin only)', async (ctx) => {
    const clock = new ManualClock(Date.UTC(2026, 10, 26, 10, 0, 0))
    const t = await createTestApp(ctx, {}, { clock })
    const admin = await registerUser(t.app)
    await t.app.auth.setRole(admin.email, 'admin')
    for (let i = 0; i < 5; i++) await t.app.inject({ method: 'GET', url: '/api/health' })
    const stats = (await t.app.inject({ method: 'GET', url: '/api/system/stats', headers: admin.headers })).json()
    assert.ok(stats.requests.currentMinute.requests >= 5)
    assert.equal(stats.store.ok, true)
    assert.ok(stats.memory.heapLimitBytes > stats.memory.heapUsedBytes)
    assert.deepEqual(stats.alerts, { open: [], recent: [] })
    assert.equal(stats.jobs.length, 5)
    clock.advance(60_000)
    const history = (await t.app.inject({ method: 'GET', url: '/api/system/stats/history?resolution=minute', headers: admin.headers })).json()
    assert.equal(history.minutes.length, 1)
    assert.ok(history.minutes[0].requests >= 5)
    assert.equal(history.minutes[0].at, '2026-11-26T10:00:00.000Z')
    const user = await registerUser(t.app)
    assert.equal((await t.app.inject({ method: 'GET', url: '/api/system/stats', headers: user.headers })).statusCode, 403)
    assert.equal((await t.app.inject({ method: 'GET', url: '/api/system/stats/history?from=2026-11-27T00:00:00Z&to=2026-11-26T00:00:00Z', headers: admin.headers })).statusCode, 400)
  })
})
