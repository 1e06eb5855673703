import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { buildApp } from '../app.ts'
import { createConfig } from '../config.ts'
import { createTestApp, TEST_SECRETS, type TestApp } from './helpers/app.ts'
import { onScopeEnd } from './helpers/scope.ts'
import { testDir } from './helpers/tmp.ts'
import { until } from './helpers/until.ts'

describe('application shell', () => {
  let t: TestApp
  before(async () => { t = await createTestApp({ FRONTEND_URL: 'https://app.example.com' }) })
  after(async () => { await t.close() })

  it('answers unknown routes with the one error shape', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/api/nope' })
    assert.equal(res.statusCode, 404)
    const body = res.json()
    assert.deepEqual(Object.keys(body).sort(), ['code', 'error', 'message', 'requestId', 'statusCode'])
    assert.equal(body.code, 'NOT_FOUND')
    assert.equal(body.error, 'Not Found')
    assert.match(body.requestId, /^[0-9a-f-]{36}$/)
  })

  it('routes malformed URLs and over-long parameters through the error shape', async () => {
    const bad = await t.app.inject({ method: 'GET', url: '/api/%E0%A4%A' })
    assert.equal(bad.statusCode, 400)
    assert.equal(bad.json().code, 'BAD_URL')
    assert.ok(bad.json().requestId)
    const long = await t.app.inject({ method: 'GET', url: '/api/' + 'x'.repeat(5000) })
    assert.equal(long.statusCode, 404)
    assert.equal(long.json().code, 'NOT_FOUND')
  })

  it('sets strict security headers on the API', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/api/health' })
    assert.match(String(res.headers['content-security-policy']), /default-src 'none'/)
    assert.equal(res.headers['x-content-type-options'], 'nosniff')
    assert.match(String(res.headers['strict-transport-security']), /max-age=31536000/)
    assert.equal(res.headers['x-powered-by'], undefined)
  })

  it('serves the OpenAPI document and a docs UI whose CSP lets it run', async () => {
    const json = await t.app.inject({ method: 'GET', url: '/docs/json' })
    assert.equal(json.statusCode, 200)
    const doc = json.json()
    assert.equal(doc.openapi, '3.1.0')
    assert.ok(doc.paths['/api/health'].get.summary)
    assert.deepEqual(doc.paths['/api/health'].get.tags, ['system'])
    assert.ok(doc.components.securitySchemes.bearerAuth)
    assert.ok(doc.components.schemas.ErrorBody, 'the shared error body is a component')
    assert.deepEqual(doc.paths['/api/auth/me'].get.security, [{ bearerAuth: [] }], 'protected routes are marked')
    assert.deepEqual(doc.paths['/api/auth/login'].post.security, [], 'public routes say so: no security')
    for (const [path, methods] of Object.entries(doc.paths) as Array<[string, Record<string, { summary?: string, tags?: string[], responses?: object }>]>) {
      for (const [method, op] of Object.entries(methods)) {
        assert.ok(op.summary, `${method} ${path} has a summary`)
        assert.ok(op.tags?.length, `${method} ${path} has tags`)
        assert.ok(op.responses && Object.keys(op.responses).length > 0, `${method} ${path} declares responses`)
      }
    }
    const ui = await t.app.inject({ method: 'GET', url: '/docs' })
    assert.equal(ui.statusCode, 200)
    const csp = String(ui.headers['content-security-policy'])
    assert.match(csp, /script-src 'self'/)
    assert.doesNotMatch(csp, /default-src 'none'/)
  })

  it('allows CORS only for FRONTEND_URL origins', async () => {
    const allowed = await t.app.inject({ method: 'OPTIONS', url: '/api/health', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'GET' } })
    assert.equal(allowed.headers['access-control-allow-origin'], 'https://app.example.com')
    const denied = await t.app.inject({ method: 'OPTIONS', url: '/api/health', headers: { origin: 'https://evil.example.com', 'access-control-request-method': 'GET' } })
    assert.equal(denied.headers['access-control-allow-origin'], undefined)
  })

  it('caps open connections and sets server timeouts from config', async (ctx) => {
    const config = createConfig({ NODE_ENV: 'test', DATA_DIR: await testDir(ctx), ...TEST_SECRETS, MAX_CONNECTIONS: '123', HEADERS_TIMEOUT_MS: '7000', KEEP_ALIVE_TIMEOUT_MS: '61000', REQUEST_TIMEOUT_MS: '9000' })
    const app = await buildApp(config, { logStream: { write () {} } })
    onScopeEnd(ctx, () => app.close())
    assert.equal(app.server.maxConnections, 123)
    assert.equal((app.server as import('node:http').Server).headersTimeout, 7000)
    assert.equal((app.server as import('node:http').Server).keepAliveTimeout, 61000)
    assert.equal((app.server as import('node:http').Server).requestTimeout, 9000)
  })

  it('refuses connections past MAX_CONNECTIONS and keeps serving', async (ctx) => {
    const local = await createTestApp(ctx, { MAX_CONNECTIONS: '2' })
    const net = await import('node:net')
    await local.app.listen({ port: 0, host: '127.0.0.1' })
    const { port } = local.app.server.address() as import('node:net').AddressInfo
    const open = (): Promise<import('node:net').Socket> => new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(s))
      s.on('error', reject)
    })
    const held = [await open(), await open()]
    const extra = await open()
    const closed = await new Promise<boolean>((resolve) => {
      extra.on('close', () => resolve(true))
      extra.write('GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n')
      setTimeout(() => resolve(false), 2000)
    })
    assert.equal(closed, true, 'the third connection is closed by the server')
    for (const s of held) s.destroy()
    const connections = promisify(local.app.server.getConnections.bind(local.app.server))
    await until(async () => await connections() < 2, 2000, 'the server sees the held connections closed')
    const res = await fetch(`http://127.0.0.1:${port}/api/health`)
    assert.equal(res.status, 200)
  })
})
