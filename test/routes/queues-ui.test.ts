import assert from 'node:assert/strict'
import { it } from 'node:test'
import { createInstances, createTestApp, registerUser } from '../helpers/app.ts'

it('Bull Board at /admin/queues: admins only, only with Redis', async (ctx) => {
  const { apps: [t] } = await createInstances(ctx, 1)
  const embedded = await createTestApp(ctx)
  const user = await registerUser(t.app)
  const admin = await registerUser(t.app)
  await t.app.auth.setRole(admin.email, 'admin')
  const anonymous = await t.app.inject({ method: 'GET', url: '/admin/queues' })
  assert.equal(anonymous.statusCode, 401)
  assert.match(String(anonymous.headers['content-security-policy']), /^default-src 'self'/, 'a refusal carries the page headers too')
  assert.equal((await t.app.inject({ method: 'GET', url: '/admin/queues', headers: user.headers })).statusCode, 403)
  const page = await t.app.inject({ method: 'GET', url: '/admin/queues', headers: admin.headers })
  assert.equal(page.statusCode, 200)
  assert.match(page.body, /<html/i)
  assert.match(String(page.headers['content-security-policy']), /script-src 'self'/, 'the page policy lets its own scripts run')
  assert.equal(page.headers['x-frame-options'], 'DENY')
  const api = await t.app.inject({ method: 'GET', url: '/admin/queues/api/queues', headers: admin.headers })
  assert.equal(api.statusCode, 200)
  assert.deepEqual(api.json().queues.map((q: { name: string }) => q.name).sort(), ['maintenance', 'webhooks'])
  assert.equal((await embedded.app.inject({ method: 'GET', url: '/admin/queues', headers: admin.headers })).statusCode, 404, 'absent without Redis')
})
