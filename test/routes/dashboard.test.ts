import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createTestApp, type TestApp } from '../helpers/app.ts'

const ERROR_KEYS = ['code', 'error', 'message', 'requestId', 'statusCode']
// The console's policy too: one strict policy for Keyward's pages.
const CSP = "default-src 'none';script-src 'self';style-src 'self';connect-src 'self';img-src 'self' data:;font-src 'self';frame-ancestors 'none';base-uri 'none';form-action 'self';require-trusted-types-for 'script';trusted-types 'none'"

describe('dashboard pages', () => {
  let t: TestApp
  before(async () => { t = await createTestApp() })
  after(async () => { await t.close() })

  it('serves the page and its assets under their own content security policy', async () => {
    for (const path of ['/dashboard', '/dashboard/app.js', '/dashboard/style.css', '/dashboard/uplot.js', '/dashboard/uplot.css']) {
      const res = await t.app.inject({ url: path })
      assert.equal(res.statusCode, 200, path)
      assert.equal(res.headers['content-security-policy'], CSP, path)
    }
  })

  it('answers a revalidation with 304 (ETag) and caches nothing without asking', async () => {
    const first = await t.app.inject({ url: '/dashboard/app.js' })
    assert.equal(first.headers['cache-control'], 'no-cache')
    assert.match(String(first.headers['content-type']), /javascript; charset=utf-8/)
    assert.ok(first.headers.etag)
    const again = await t.app.inject({ url: '/dashboard/app.js', headers: { 'if-none-match': String(first.headers.etag) } })
    assert.equal(again.statusCode, 304)
  })

  it('refuses input it does not take with a 4xx in the one error shape', async () => {
    const cases: Array<[string, string, number]> = [
      ['GET', '/dashboard?x=1', 400],
      ['GET', '/dashboard/app.js?v=1', 400],
      ['GET', '/dashboard/other.js', 404],
      ['POST', '/dashboard', 404]
    ]
    for (const [method, url, status] of cases) {
      const res = await t.app.inject({ method: method as 'GET', url })
      assert.equal(res.statusCode, status, `${method} ${url}`)
      assert.deepEqual(Object.keys(res.json()).sort(), ERROR_KEYS, `${method} ${url}`)
    }
  })
})
