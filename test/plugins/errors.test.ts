import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import fc from 'fast-check'
import Fastify, { type FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { MongoServerError } from 'mongodb'
import errors, { AppError, frameworkErrorHandler } from '../../plugins/app/errors.ts'
import { StoreUnavailableError } from '../../plugins/app/store/errors.ts'
import { validatorCompiler } from '../../plugins/app/validation.ts'

const KEYS = ['code', 'error', 'message', 'requestId', 'statusCode']

/** The error and validation machinery buildApp installs, on a probe route with a typical body schema. */
async function probeApp () {
  const app = Fastify({ bodyLimit: 1024, frameworkErrors: frameworkErrorHandler, logger: false }).withTypeProvider<TypeBoxTypeProvider>()
  app.setValidatorCompiler(validatorCompiler)
  await app.register(errors)
  const received: unknown[] = []
  app.post('/probe', {
    schema: {
      body: Type.Object({
        name: Type.String({ minLength: 1, maxLength: 20 }),
        count: Type.Integer({ minimum: 0, maximum: 10 }),
        tags: Type.Optional(Type.Array(Type.String({ maxLength: 10 }), { maxItems: 3 }))
      }, { additionalProperties: false }),
      querystring: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })) }, { additionalProperties: false })
    }
  }, async (request) => {
    received.push(request.body)
    return { ok: true, limit: request.query.limit ?? null }
  })
  app.get('/boom', async () => { throw new Error('db password is hunter2 at /srv/app.ts:12') })
  app.get('/stepdown', async () => {
    throw new StoreUnavailableError(new MongoServerError({ code: 10107, codeName: 'NotWritablePrimary', errmsg: 'not primary at rs0/10.0.0.7' }))
  })
  app.get('/conflict', async () => { throw new AppError(409, 'EMAIL_TAKEN', 'That email is already registered') })
  await app.ready()
  return { app, received }
}

describe('error shape and validation', () => {
  let app: FastifyInstance
  let received: unknown[]
  before(async () => { ({ app, received } = await probeApp()) })
  after(async () => { await app.close() })

  const post = (payload: string, contentType = 'application/json', url = '/probe') =>
    app.inject({ method: 'POST', url, payload, headers: { 'content-type': contentType } })

  it('accepts a valid body and coerces query strings', async () => {
    const res = await post(JSON.stringify({ name: 'a', count: 1 }), 'application/json', '/probe?limit=5')
    assert.equal(res.statusCode, 200)
    assert.deepEqual(res.json(), { ok: true, limit: 5 })
  })

  const cases: Array<[string, string, number, string, RegExp?]> = [
    ['wrong type', JSON.stringify({ name: 'a', count: '1' }), 400, 'VALIDATION_FAILED', /body\/count must be integer/],
    ['unknown field', JSON.stringify({ name: 'a', count: 1, role: 'admin' }), 400, 'VALIDATION_FAILED', /unknown field 'role'/],
    ['missing field', JSON.stringify({ name: 'a' }), 400, 'VALIDATION_FAILED', /missing the required field 'count'/],
    ['misnamed field', JSON.stringify({ nme: 'a', count: 1 }), 400, 'VALIDATION_FAILED', /^body has an unknown field 'nme'$/],
    ['out of range', JSON.stringify({ name: 'a', count: 11 }), 400, 'VALIDATION_FAILED', /body\/count must be <= 10/],
    ['too long', JSON.stringify({ name: 'x'.repeat(21), count: 1 }), 400, 'VALIDATION_FAILED', /body\/name/],
    ['too many items', JSON.stringify({ name: 'a', count: 1, tags: ['a', 'b', 'c', 'd'] }), 400, 'VALIDATION_FAILED', /body\/tags/],
    ['bad JSON', '{"name": "a",', 400, 'MALFORMED_JSON'],
    ['array body', '[1,2]', 400, 'VALIDATION_FAILED'],
    ['null body', 'null', 400, 'VALIDATION_FAILED'],
    ['oversized', JSON.stringify({ name: 'a', count: 1, pad: 'x'.repeat(2000) }), 413, 'PAYLOAD_TOO_LARGE'],
    ['prototype pollution', '{"name":"a","count":1,"__proto__":{"admin":true}}', 400, 'MALFORMED_JSON']
  ]
  for (const [label, payload, status, code, message] of cases) {
    it(`${label}: ${status} ${code}`, async () => {
      const before = received.length
      const res = await post(payload)
      assert.equal(res.statusCode, status, res.body)
      const body = res.json()
      assert.deepEqual(Object.keys(body).sort(), KEYS)
      assert.equal(body.code, code)
      if (message) assert.match(body.message, message)
      assert.equal(received.length, before, 'the handler never ran')
    })
  }

  it('an unsupported content type is 415', async () => {
    const res = await post('name=a', 'application/x-www-form-urlencoded')
    assert.equal(res.statusCode, 415)
    assert.equal(res.json().code, 'UNSUPPORTED_MEDIA_TYPE')
  })

  it('an out-of-range query value is a 400, not a clamp', async () => {
    const res = await post(JSON.stringify({ name: 'a', count: 1 }), 'application/json', '/probe?limit=101')
    assert.equal(res.statusCode, 400)
    assert.match(res.json().message, /querystring\/limit must be <= 100/)
  })

  it('a 5xx never carries the internal message', async () => {
    const res = await app.inject({ method: 'GET', url: '/boom' })
    assert.equal(res.statusCode, 500)
    assert.equal(res.json().code, 'INTERNAL_ERROR')
    assert.doesNotMatch(res.body, /hunter2|app\.ts|stack/)
  })

  it('a store that is unavailable (a MongoDB step-down) is a 503 STORE_UNAVAILABLE with Retry-After, without the driver\'s message', async () => {
    const res = await app.inject({ method: 'GET', url: '/stepdown' })
    assert.equal(res.statusCode, 503)
    assert.equal(res.json().code, 'STORE_UNAVAILABLE')
    assert.equal(res.headers['retry-after'], '2')
    assert.doesNotMatch(res.body, /10\.0\.0\.7|not primary/)
  })

  it('domain errors keep their status and code', async () => {
    const res = await app.inject({ method: 'GET', url: '/conflict' })
    assert.equal(res.statusCode, 409)
    assert.equal(res.json().code, 'EMAIL_TAKEN')
  })

  it('arbitrary JSON bodies never produce a 5xx', async () => {
    await fc.assert(fc.asyncProperty(fc.json({ depthSize: 'small' }), async (payload) => {
      const res = await post(payload)
      assert.ok(res.statusCode < 500, `${res.statusCode} for ${payload}`)
      if (res.statusCode !== 200) assert.deepEqual(Object.keys(res.json()).sort(), KEYS)
    }), { numRuns: 300 })
  })
})
