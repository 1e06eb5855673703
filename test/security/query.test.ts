import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { createTestApp, registerUser } from '../helpers/app.ts'

// A query string name a route does not take is refused on every route, not only on those that
// declare a query schema (it was silently ignored: `POST /api/keys?x=1` answered 201).

describe('query strings a route does not take', () => {
  it('are a 400 that names the field, and change nothing', async (ctx) => {
    const t = await createTestApp(ctx)
    const user = await registerUser(t.app)
    const create = await t.app.inject({ method: 'POST', url: '/api/keys?dryRun=1', headers: user.headers, payload: { kind: 'issued', name: 'not created' } })
    assert.equal(create.statusCode, 400)
    assert.equal(create.json().code, 'VALIDATION_FAILED')
    assert.match(create.json().message, /querystring/)
    const list = await t.app.inject({ method: 'GET', url: '/api/keys', headers: user.headers })
    assert.deepEqual(list.json().items, [], 'no key was created')

    for (const [method, url] of [['GET', '/api/health?x=1'], ['GET', '/api/auth/me?x=1'], ['POST', '/api/keys/verify?debug=true']] as const) {
      const res = await t.app.inject({ method, url, headers: user.headers, ...(method === 'POST' ? { payload: { key: 'kw_nothing' } } : {}) })
      assert.equal(res.statusCode, 400, `${method} ${url}: ${res.body}`)
      assert.equal(res.json().code, 'VALIDATION_FAILED')
    }
  })

  it('leave routes with a query schema as they were: known names pass, unknown ones are refused', async (ctx) => {
    const t = await createTestApp(ctx)
    const user = await registerUser(t.app)
    assert.equal((await t.app.inject({ method: 'GET', url: '/api/keys?limit=5', headers: user.headers })).statusCode, 200)
    assert.equal((await t.app.inject({ method: 'GET', url: '/api/keys?x=1', headers: user.headers })).statusCode, 400)
    assert.equal((await t.app.inject({ method: 'GET', url: '/api/health' })).statusCode, 200)
  })
})
