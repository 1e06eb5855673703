import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { runJob } from '../../plugins/app/jobs/runner.ts'
import { SCHEDULE } from '../../jobs/schedule.ts'
import { createTestApp, registerUser, type TestApp } from '../helpers/app.ts'

// Issue 14, finding 1: text a user controls must never become a property of Object.prototype.
const PROTO_NAMES = ['__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString']
const PASSPHRASE = 'a vault passphrase of some length'
const ADMIN = `proto-admin-${process.pid}@example.com`

type User = Awaited<ReturnType<typeof registerUser>>

/** What Object.prototype looks like before any request: its own property names and their values. */
function prototypeSnapshot () {
  return Object.getOwnPropertyNames(Object.prototype).map((name) => [name, Object.getOwnPropertyDescriptor(Object.prototype, name)?.value])
}

describe('prototype-named text in every user-controlled field', () => {
  let t: TestApp
  const before_ = prototypeSnapshot()
  /** Every answer of the run, so one 5xx anywhere fails the test with its request. */
  const answers: Array<{ what: string, status: number, body: string }> = []

  before(async () => {
    // Only the per-user creation tier is raised (this test creates ~40 keys); every other setting is the default.
    t = await createTestApp({ KEY_CREATE_RATE_LIMIT_MAX: '1000', ADMIN_EMAILS: ADMIN, JOBS_EMBEDDED: 'false' })
  })
  after(async () => { await t.close() })

  async function call (user: User | null, method: string, url: string, payload?: unknown) {
    const res = await t.app.inject({
      method: method as 'GET',
      url,
      headers: user === null ? {} : user.headers,
      ...(payload === undefined ? {} : { payload: payload as object })
    })
    answers.push({ what: `${method} ${url} ${payload === undefined ? '' : JSON.stringify(payload)}`, status: res.statusCode, body: res.body })
    return res
  }

  it('stores or refuses each value, and every report and list afterwards answers without harm', async () => {
    const admin = await registerUser(t.app, { email: ADMIN })
    const user = await registerUser(t.app, { name: 'constructor' })
    assert.equal((await call(user, 'PUT', '/api/vault/passphrase', { passphrase: PASSPHRASE })).statusCode, 200)
    const keyIds: string[] = []
    for (const value of PROTO_NAMES) {
      await call(user, 'PATCH', '/api/auth/me', { name: value })
      const fields = {
        name: value,
        service: value,
        description: value,
        scopes: [value],
        metadata: { [value]: value, nested: { [value]: [value] } }
      }
      // Each field alone, then all together: a value refused in one field must not hide another.
      for (const [field, v] of [...Object.entries(fields), ['all', null]] as Array<[string, unknown]>) {
        const body = field === 'all' ? { kind: 'issued', ...fields } : { kind: 'issued', name: 'k', [field]: v }
        const created = await call(user, 'POST', '/api/keys', body)
        if (created.statusCode === 201) keyIds.push(created.json().key.id)
      }
      const tagged = await call(user, 'POST', '/api/keys', { kind: 'issued', name: 'tagged', tags: [value] })
      if (tagged.statusCode === 201) keyIds.push(tagged.json().key.id)
      const held = await call(user, 'POST', '/api/keys', { kind: 'held', name: value, service: value, secret: `sk_${value}_secret`, passphrase: PASSPHRASE })
      if (held.statusCode === 201) keyIds.push(held.json().key.id)
      await call(user, 'PUT', '/api/auth/me/webhook', { url: `https://hooks.example.com/${value}`, secret: `${value}-webhook-secret-long-enough` })
    }
    // At least the service '__proto__' (the crash of finding 1) must have been accepted, or the test proves nothing.
    const summaryKeys = answers.filter((a) => a.status === 201 && a.what.includes('"service":"__proto__"'))
    assert.ok(summaryKeys.length > 0, 'a key with service "__proto__" was created')

    for (const id of keyIds) {
      await call(user, 'POST', `/api/keys/${id}/usage`, { count: 5 })
      await call(user, 'PATCH', `/api/keys/${id}`, { tags: ['constructor', 'toString'], metadata: { toString: 'x', hasOwnProperty: 1 } })
    }
    await call(user, 'POST', '/api/keys/bulk', { action: 'addTags', ids: keyIds.slice(0, 10), tags: ['prototype', 'constructor'] })

    // Every report and list, with each value as a filter.
    for (const value of PROTO_NAMES) {
      const q = encodeURIComponent(value)
      await call(user, 'GET', `/api/keys?service=${q}`)
      await call(user, 'GET', `/api/keys?tag=${q}`)
      await call(user, 'GET', `/api/keys?q=${q}`)
      await call(user, 'GET', `/api/audit?action=${q}`)
      await call(user, 'GET', `/api/audit?keyId=${q}`)
      await call(user, 'GET', `/api/keys/${q}`)
    }
    for (const url of ['/api/usage/summary', '/api/keys/stats', '/api/keys', '/api/auth/me/export', '/api/audit', '/api/audit/verify',
      '/api/notifications', '/api/auth/me/webhook', '/api/auth/me', '/api/auth/sessions']) {
      const res = await call(user, 'GET', url)
      assert.equal(res.statusCode, 200, `${url}: ${res.body}`)
    }
    for (const id of keyIds.slice(0, 5)) await call(user, 'GET', `/api/keys/${id}/usage?granularity=day`)
    // The maintenance jobs read the same data: quota checks group by key, stats group by service.
    for (const job of SCHEDULE) await runJob(job, t.app.jobs.context)
    for (const url of ['/api/system/stats', '/api/system/stats/history', '/api/system/jobs', '/api/system/rate-limits', '/api/system/info']) {
      const res = await call(admin, 'GET', url)
      assert.equal(res.statusCode, 200, `${url}: ${res.body}`)
    }
    const summary = (await call(user, 'GET', '/api/usage/summary')).json()
    assert.equal(Object.getOwnPropertyDescriptor(summary.byService, '__proto__')?.value?.requests, 5 * summaryKeys.length,
      'the "__proto__" service is reported as a plain entry')

    const failures = answers.filter((a) => a.status >= 500)
    assert.deepEqual(failures, [], 'no request answered 5xx')
  })

  it('leaves Object.prototype untouched and the service working for a fresh user', async () => {
    assert.deepEqual(Object.keys(Object.prototype), [], 'Object.prototype has no own enumerable property')
    assert.deepEqual(prototypeSnapshot(), before_, 'no own property of Object.prototype changed')
    const fresh = await registerUser(t.app)
    const created = await t.app.inject({ method: 'POST', url: '/api/keys', headers: fresh.headers, payload: { kind: 'issued', name: 'after the storm' } })
    assert.equal(created.statusCode, 201, created.body)
    const verified = await t.app.inject({ method: 'POST', url: '/api/keys/verify', headers: fresh.headers, payload: { key: created.json().secret } })
    assert.equal(verified.json().code, 'VALID')
    assert.equal((await t.app.inject({ method: 'GET', url: '/api/health' })).statusCode, 200)
  })
})
