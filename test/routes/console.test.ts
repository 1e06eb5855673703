import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createTestApp, type TestApp } from '../helpers/app.ts'

const ERROR_KEYS = ['code', 'error', 'message', 'requestId', 'statusCode']
const CSP = "default-src 'none';script-src 'self';style-src 'self';connect-src 'self';img-src 'self' data:;font-src 'self';frame-ancestors 'none';base-uri 'none';form-action 'self';require-trusted-types-for 'script';trusted-types 'none'"

describe('console pages', () => {
  let t: TestApp
  before(async () => { t = await createTestApp() })
  after(async () => { await t.close() })

  it('serves the page, its scripts and the vendored libraries under the strict content security policy', async () => {
    const paths = ['/console', '/console/', '/console/style.css', '/console/js/main.js', '/console/js/pages/keys.js',
      '/console/vendor/preact.js', '/console/vendor/hooks.js', '/console/vendor/htm.js', '/console/vendor/uplot.js', '/console/vendor/uplot.css']
    for (const path of paths) {
      const res = await t.app.inject({ url: path })
      assert.equal(res.statusCode, 200, path)
      assert.equal(res.headers['content-security-policy'], CSP, path)
      assert.equal(res.headers['x-frame-options'], 'DENY', path)
    }
    const page = await t.app.inject({ url: '/console' })
    assert.match(String(page.headers['content-type']), /^text\/html/)
    // No inline script or style for the policy to refuse: every script and sheet is a file.
    assert.doesNotMatch(page.body, /<script(?![^>]*\bsrc=)[^>]*>/)
    assert.doesNotMatch(page.body, /<style|style="/)
    const main = await t.app.inject({ url: '/console/js/main.js' })
    assert.match(String(main.headers['content-type']), /javascript/)
  })

  it('answers every view address, deep links included, with the page', async () => {
    const page = (await t.app.inject({ url: '/console' })).body
    for (const path of ['/console/keys', '/console/keys/k_0123456789abcdef', '/console/usage', '/console/audit', '/console/notifications', '/console/account']) {
      const res = await t.app.inject({ url: path })
      assert.equal(res.statusCode, 200, path)
      assert.equal(res.body, page, path)
      assert.equal(res.headers['content-security-policy'], CSP, path)
    }
  })

  it('answers a revalidation with 304 (ETag) and caches nothing without asking', async () => {
    for (const path of ['/console', '/console/js/main.js', '/console/vendor/preact.js']) {
      const first = await t.app.inject({ url: path })
      assert.equal(first.headers['cache-control'], 'no-cache', path)
      assert.ok(first.headers.etag, path)
      const again = await t.app.inject({ url: path, headers: { 'if-none-match': String(first.headers.etag) } })
      assert.equal(again.statusCode, 304, path)
    }
  })

  it('refuses input it does not take with a 4xx in the one error shape', async () => {
    const cases: Array<[string, string, number]> = [
      ['GET', '/console?x=1', 400],
      ['GET', '/console/keys/abc?tab=usage', 400],
      ['GET', '/console/js/main.js?v=1', 400],
      ['GET', '/console/other.js', 404],
      ['GET', '/console/settings', 404],
      ['GET', '/console/keys/a/b', 404],
      ['POST', '/console', 404]
    ]
    for (const [method, url, status] of cases) {
      const res = await t.app.inject({ method: method as 'GET', url })
      assert.equal(res.statusCode, status, `${method} ${url}`)
      assert.deepEqual(Object.keys(res.json()).sort(), ERROR_KEYS, `${method} ${url}`)
    }
  })

  it('leaves the API its own headers: the console policy is not on /api answers', async () => {
    for (const url of ['/api/health', '/api/keys']) {
      const res = await t.app.inject({ url })
      assert.notEqual(res.headers['content-security-policy'], CSP, url)
      assert.doesNotMatch(String(res.headers['content-security-policy']), /script-src 'self'/, url)
    }
  })
})
