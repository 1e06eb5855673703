import assert from 'node:assert/strict'
import { after, before, it } from 'node:test'
import fc from 'fast-check'
import { createTestApp, registerUser, type TestApp } from '../helpers/app.ts'
import { assertErrorShape, openApiOperations, type JsonSchema, type Operation } from '../helpers/openapi.ts'

/** A value of the wrong JSON type for a declared type. */
function wrongFor (type: string | string[] | undefined): unknown[] {
  const t = Array.isArray(type) ? type[0] : type
  switch (t) {
    case 'string': return [12345, true, [], {}]
    case 'integer': case 'number': return ['12', true, [], {}, '1e400']
    case 'boolean': return ['true', 1, []]
    case 'array': return ['a', 1, {}]
    case 'object': return ['a', 1, []]
    default: return [Symbol.for('skip')]
  }
}

const ARRAY_BOMB = '['.repeat(5000) + ']'.repeat(5000)
const OBJECT_BOMB = '{"a":'.repeat(5000) + '1' + '}'.repeat(5000)
/** Bodies that pass validation, so a bomb added to one of their fields reaches the service. */
const VALID_BASE: Record<string, Record<string, unknown>> = {
  'POST /api/keys': { kind: 'issued', name: 'bomb' },
  'PATCH /api/keys/{id}': { name: 'bomb' }
}

let t: TestApp
let ops: Operation[]
let headers: Record<string, string>
let keyId: string
let tried = 0
let snapshotBefore: string

async function snapshot () {
  const get = async (url: string) => (await t.app.inject({ method: 'GET', url, headers })).body
  const parts = [
    await get('/api/keys?limit=100&sort=createdAt'),
    await get('/api/auth/me'),
    await get('/api/auth/sessions'),
    await get('/api/vault'),
    await get('/api/auth/me/webhook'),
    await get('/api/notifications'),
    JSON.stringify((await t.app.store.auditChain((await t.app.inject({ method: 'GET', url: '/api/auth/me', headers })).json().id, 0, 10_000)).map((e) => e.action)),
    JSON.stringify(await t.app.store.systemCounts(0))
  ]
  return parts.join('\n')
}

before(async () => {
  t = await createTestApp({
    GENERAL_RATE_LIMIT_MAX: '100000000', HEAVY_RATE_LIMIT_MAX: '1000000', KEY_CREATE_RATE_LIMIT_MAX: '1000000', VERIFY_FAILURE_LIMIT_MAX: '100000000', JOBS_EMBEDDED: 'false'
  })
  const user = await registerUser(t.app)
  headers = user.headers
  await t.app.inject({ method: 'PUT', url: '/api/vault/passphrase', headers, payload: { passphrase: 'sweep vault passphrase' } })
  keyId = (await t.app.inject({ method: 'POST', url: '/api/keys', headers, payload: { kind: 'issued', name: 'sweep target' } })).json().key.id
  ops = await openApiOperations(t.app)
  snapshotBefore = await snapshot()
})
after(async () => { await t.close() })

async function send (method: string, url: string, payload: string | Buffer | undefined, contentType = 'application/json') {
  tried++
  const res = await t.app.inject({
    method: method as 'GET',
    url,
    headers: { ...headers, ...(payload === undefined ? {} : { 'content-type': contentType }) },
    ...(payload === undefined ? {} : { payload })
  })
  assert.ok(res.statusCode < 500, `${method} ${url} ${String(payload).slice(0, 120)} → ${res.statusCode} ${res.body.slice(0, 200)}`)
  assert.ok(res.statusCode >= 400, `${method} ${url} ${String(payload).slice(0, 120)} was accepted (${res.statusCode})`)
  assertErrorShape(res, `${method} ${url}`)
}

const concrete = (path: string) => path.replace(/\{id\}|:id/g, keyId)

it('every route answers invalid requests with a 4xx in the one error shape, never a 5xx, and the store is unchanged', async () => {
  const bodyOps = ops.filter((o) => ['POST', 'PUT', 'PATCH', 'DELETE'].includes(o.method) && o.body?.properties !== undefined)
  assert.ok(bodyOps.length >= 15, `${bodyOps.length} operations with bodies`)

  for (const op of bodyOps) {
    const url = concrete(op.path)
    // The fields of every shape of the body (the create-key body is one of two, discriminated on `kind`).
    const props: Record<string, JsonSchema> = Object.assign({}, op.body?.properties, ...(op.body?.oneOf ?? []).map((shape) => shape.properties))
    // Unknown fields are always refused (additionalProperties: false), whatever else is sent.
    await send(op.method, url, JSON.stringify({ __unknown__: 1 }))
    await send(op.method, url, '{"__unknown__": "\\u0000\\ud800", "x": ' + '['.repeat(5000) + ']'.repeat(5000) + '}')
    await send(op.method, url, Buffer.concat([Buffer.from('{"__unknown__":"'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}')]))
    await send(op.method, url, '{"a":')
    await send(op.method, url, 'not json at all')
    await send(op.method, url, JSON.stringify({ __unknown__: 'x'.repeat(2 * 1024 * 1024) }))
    await send(op.method, url, 'a=1&b=2', 'application/x-www-form-urlencoded')
    await send(op.method, url, JSON.stringify([1, 2, 3]))
    for (const [name, schema] of Object.entries(props)) {
      for (const wrong of wrongFor(schema.type)) {
        if (wrong === Symbol.for('skip')) continue
        await send(op.method, url, JSON.stringify({ [name]: wrong, __unknown__: true }))
        await send(op.method, url, JSON.stringify({ [name]: wrong }).replace('"1e400"', '1e400'))
      }
      await send(op.method, url, JSON.stringify({ [name]: 'x'.repeat(100_000) }))
    }
    // Depth bombs inside known fields, where the schema accepts the outer shape and the service must refuse.
    for (const name of Object.keys(props)) {
      for (const bomb of [ARRAY_BOMB, OBJECT_BOMB, `[${ARRAY_BOMB}]`, `{"a":${OBJECT_BOMB}}`]) {
        await send(op.method, url, `{${JSON.stringify(name)}:${bomb}}`)
        const base = VALID_BASE[`${op.method} ${op.path}`]
        if (base !== undefined) await send(op.method, url, `${JSON.stringify(base).slice(0, -1)},${JSON.stringify(name)}:${bomb}}`)
      }
    }
    await fc.assert(fc.asyncProperty(fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 3 }), { minKeys: 1, maxKeys: 4 }), async (extra) => {
      await send(op.method, url, JSON.stringify({ ...extra, __unknown__: fc.sample(fc.jsonValue(), 1)[0] ?? null }))
    }), { numRuns: 25 })
  }

  // Query strings: unknown names, out-of-range numbers, bad cursors, huge values.
  for (const op of ops.filter((o) => o.method === 'GET' && o.parameters.some((p) => p.in === 'query'))) {
    const url = concrete(op.path)
    await send('GET', `${url}?__unknown__=1`, undefined)
    for (const name of op.parameters.filter((p) => p.in === 'query').map((p) => p.name)) {
      for (const value of ['-1', '1e400', 'x'.repeat(5000), '%00', '[]', '9'.repeat(40)]) {
        tried++
        const res = await t.app.inject({ method: 'GET', url: `${url}?${name}=${encodeURIComponent(value)}`, headers })
        assert.ok(res.statusCode < 500, `GET ${url}?${name}=${value.slice(0, 20)} → ${res.statusCode}`)
        if (res.statusCode >= 400) assertErrorShape(res, `GET ${url}?${name}`)
      }
    }
  }

  // Path parameters of the wrong form, malformed encodings, traversal: never 5xx.
  for (const op of ops.filter((o) => o.path.includes('{id}'))) {
    for (const id of ['x'.repeat(300), '%E0%A4%A', '..%2F..%2Fetc', '0'.repeat(24), 'null', '%00']) {
      tried++
      const res = await t.app.inject({ method: op.method as 'GET', url: op.path.replace('{id}', id), headers, ...(['POST', 'PUT', 'PATCH', 'DELETE'].includes(op.method) ? { payload: { __unknown__: 1 } } : {}) })
      assert.ok(res.statusCode >= 400 && res.statusCode < 500, `${op.method} ${op.path} id=${id.slice(0, 20)} → ${res.statusCode}`)
      assertErrorShape(res, `${op.method} ${op.path} id=${id.slice(0, 20)}`)
    }
  }

  assert.equal(await snapshot(), snapshotBefore, 'the store is unchanged')
  console.log(`bad-input sweep: ${tried} requests over ${ops.length} operations, no 5xx, store unchanged`)
  assert.ok(tried > 1000)
})
