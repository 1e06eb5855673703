import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createTestApp, type TestApp } from '../helpers/app.ts'
import { until } from '../helpers/until.ts'

describe('GET /api/health', () => {
  let t: TestApp
  before(async () => { t = await createTestApp() })
  after(async () => { await t.close() })

  it('answers 200 ok with the store and Redis reachability', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/api/health' })
    assert.equal(res.statusCode, 200)
    const body = res.json()
    assert.equal(body.status, 'ok')
    assert.equal(body.store.kind, 'sqlite')
    assert.equal(body.store.ok, true)
    assert.deepEqual(body.redis, { configured: false, ok: true })
    assert.equal(body.pressure.underPressure, false)
    assert.equal(typeof body.pressure.heapUsedBytes, 'number')
  })

  it('answers 503 unavailable when the store cannot be reached', async (ctx) => {
    const local = await createTestApp(ctx)
    await local.app.store.close()
    const res = await local.app.inject({ method: 'GET', url: '/api/health' })
    assert.equal(res.statusCode, 503)
    assert.equal(res.json().status, 'unavailable')
    assert.equal(res.json().store.ok, false)
  })

  it('answers 503 with the health shape when under pressure, and sheds other routes in the error shape', async (ctx) => {
    // A heap limit of one byte puts the process under pressure at the first sample.
    const local = await createTestApp(ctx, { MAX_HEAP_USED_BYTES: '1' })
    await until(() => local.app.isUnderPressure(), 5000, 'under pressure at the first sample')
    const health = await local.app.inject({ method: 'GET', url: '/api/health' })
    assert.equal(health.statusCode, 503)
    assert.equal(health.json().status, 'unavailable')
    assert.equal(health.json().pressure.underPressure, true)
    const other = await local.app.inject({ method: 'GET', url: '/docs/json' })
    assert.equal(other.statusCode, 503)
    assert.equal(other.json().code, 'SERVICE_UNAVAILABLE')
    assert.equal(other.headers['retry-after'], '10')
    // Shed before any other work: the hot path, and a route that would first authenticate (no 401).
    for (const [method, url] of [['POST', '/api/keys/verify'], ['GET', '/api/keys']] as const) {
      const shed = await local.app.inject({ method, url, ...(method === 'POST' ? { payload: { key: 'kw_x' } } : {}) })
      assert.equal(shed.statusCode, 503, url)
      assert.equal(shed.json().code, 'SERVICE_UNAVAILABLE')
      assert.equal(shed.headers['retry-after'], '10')
    }
  })

  it('reports Redis when it is configured', async (ctx) => {
    const local = await createTestApp(ctx, { REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' })
    const body = (await local.app.inject({ method: 'GET', url: '/api/health' })).json()
    assert.equal(body.redis.configured, true)
    assert.equal(body.redis.ok, true)
    assert.equal(typeof body.redis.latencyMs, 'number')
  })
})
