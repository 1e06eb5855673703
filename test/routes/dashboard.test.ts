import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createTestApp, type TestApp } from '../helpers/app.ts'

const ERROR_KEYS = ['code', 'error', 'message', 'requestId', 'statusCode']

describe('dashboard pages', () => {
  let t: TestApp
  before(async () => { t = await createTestApp() })
  after(async () => { await t.close() })

  it('serves the page and its assets under the console\'s strict content security policy', async () => {
    // One policy for Keyward's pages: the console's test spells it out.
    const consoleCsp = (await t.app.inject({ url: '/console' })).headers['content-security-policy']
    assert.match(String(consoleCsp), /^default-src 'none';/)
    for (const path of ['/dashboard', '/dashboard/app.js', '/dashboard/style.css', '/dashboard/uplot.js', '/dashboard/uplot.css']) {
      const res = await t.app.inject({ url: path })
      assert.equal(res.statusCode, 200, path)
      assert.equal(res.headers['content-security-policy'], consoleCsp, path)
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
