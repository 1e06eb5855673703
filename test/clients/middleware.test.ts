import assert from 'node:assert/strict'
import { once } from 'node:events'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import express from 'express'
import Fastify from 'fastify'
import { Keyward, type VerifyResult } from '../../clients/node/src/index.ts'
import { keyward as keywardExpress } from '../../clients/node/src/express.ts'
import keywardFastify from '../../clients/node/src/fastify.ts'
import type { GuardOptions, UnavailableEvent } from '../../clients/node/src/policy.ts'
import { startKeyward, type RunningKeyward } from './keyward.ts'

let kw: RunningKeyward
before(async () => { kw = await startKeyward() })
after(async () => { await kw.close() })

interface Protected { url: string, close (): Promise<void> }

/** A Fastify app whose one route answers the verify result the middleware attached. */
async function fastifyApp (options: GuardOptions): Promise<Protected> {
  const app = Fastify()
  await app.register(async (api) => {
    await api.register(keywardFastify, options)
    api.get('/data', async (request) => ({ keyward: request.keyward }))
  })
  app.get('/open', async () => ({ open: true }))
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  return { url, close: () => app.close() }
}

async function expressApp (options: GuardOptions): Promise<Protected> {
  const app = express()
  app.get('/open', (_req, res) => { res.json({ open: true }) })
  app.get('/data', keywardExpress(options), (req, res) => { res.json({ keyward: req.keyward }) })
  const server: Server = app.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()) })
  }
}

async function get (app: Protected, headers: Record<string, string> = {}, path = '/data') {
  const res = await fetch(app.url + path, { headers })
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.json() as { keyward?: VerifyResult | null, code?: string, statusCode?: number } }
}

const bearer = (secret: string) => ({ authorization: `Bearer ${secret}` })

for (const [framework, build] of [['Fastify', fastifyApp], ['Express', expressApp]] as const) {
  describe(`${framework} middleware`, () => {
    test('a valid key passes with the verify answer attached; a missing or unknown key is 401', async () => {
      const { id, secret } = await kw.issue()
      const app = await build({ keyward: kw.client() })
      try {
        const ok = await get(app, bearer(secret))
        assert.equal(ok.status, 200)
        assert.equal(ok.body.keyward?.keyId, id)
        assert.deepEqual((await get(app)).body, { statusCode: 401, code: 'MISSING_KEY', message: 'An API key is required' })
        assert.equal((await get(app, { authorization: secret })).status, 401, 'not a Bearer credential')
        const unknown = await get(app, bearer('kw_' + 'a'.repeat(49)))
        assert.equal(unknown.status, 401)
        assert.ok(['MALFORMED', 'NOT_FOUND'].includes(unknown.body.code!))
        assert.equal((await get(app, {}, '/open')).status, 200, 'routes outside the protected context stay open')
      } finally { await app.close() }
    })

    test('each refusal maps to its status: revoked and disabled 401, scopes 403, rate limit and usage 429 with Retry-After', async () => {
      const app = await build({ keyward: kw.client(), header: 'X-API-Key', scopes: ['read'] })
      try {
        const revoked = await kw.issue({ scopes: ['read'] })
        await kw.owner.api.revokeKey({ path: { id: revoked.id } })
        assert.deepEqual([(await get(app, { 'x-api-key': revoked.secret })).status, (await get(app, { 'x-api-key': revoked.secret })).body.code], [401, 'REVOKED'])

        const disabled = await kw.issue({ scopes: ['read'] })
        await kw.owner.api.updateKey({ path: { id: disabled.id }, body: { status: 'disabled' } })
        assert.equal((await get(app, { 'x-api-key': disabled.secret })).body.code, 'DISABLED')

        const writer = await kw.issue({ scopes: ['write'] })
        const scoped = await get(app, { 'x-api-key': writer.secret })
        assert.deepEqual([scoped.status, scoped.body.code], [403, 'INSUFFICIENT_SCOPES'])

        const limited = await kw.issue({ scopes: ['read'], rateLimit: { limit: 1, windowMs: 60_000 } })
        assert.equal((await get(app, { 'x-api-key': limited.secret })).status, 200)
        const second = await get(app, { 'x-api-key': limited.secret })
        assert.deepEqual([second.status, second.body.code], [429, 'RATE_LIMITED'])
        assert.ok(Number(second.retryAfter) >= 1, 'Retry-After passed on')

        const metered = await kw.issue({ scopes: ['read'], monthlyLimit: 1 })
        assert.equal((await get(app, { 'x-api-key': metered.secret })).status, 200)
        const over = await get(app, { 'x-api-key': metered.secret })
        assert.deepEqual([over.status, over.body.code], [429, 'USAGE_EXCEEDED'])
        assert.ok(Number(over.retryAfter) >= 1)
      } finally { await app.close() }
    })

    test('the refusal body takes a configured shape', async () => {
      const app = await build({ keyward: kw.client(), errorBody: (r) => ({ error: { type: r.code, status: r.statusCode } }) })
      try {
        assert.deepEqual((await get(app)).body, { error: { type: 'MISSING_KEY', status: 401 } })
      } finally { await app.close() }
    })

    test('with the cache on, a revoked key stops passing within the TTL plus Keyward\'s 1 s bound', async () => {
      const { id, secret } = await kw.issue()
      const app = await build({ keyward: kw.client({ cache: { ttlMs: 500 } }) })
      try {
        assert.equal((await get(app, bearer(secret))).status, 200)
        await kw.owner.api.revokeKey({ path: { id } })
        const revokedAt = Date.now()
        while ((await get(app, bearer(secret))).status === 200) {
          assert.ok(Date.now() - revokedAt < 1500 + 500, 'still passing past the bound')
          await new Promise((resolve) => setTimeout(resolve, 50))
        }
      } finally { await app.close() }
    })

    test('Keyward unreachable: 503 by default, through when failing open, reported either way', async () => {
      const { secret } = await kw.issue()
      const events: UnavailableEvent[] = []
      const nowhere = new Keyward({ baseUrl: 'http://127.0.0.1:1', token: 'x', timeoutMs: 300 })
      const closed = await build({ keyward: nowhere, onUnavailable: (e) => events.push(e) })
      const open = await build({ keyward: nowhere, failOpen: true, onUnavailable: (e) => events.push(e) })
      try {
        const refused = await get(closed, bearer(secret))
        assert.deepEqual([refused.status, refused.body.code], [503, 'KEYWARD_UNAVAILABLE'])
        const through = await get(open, bearer(secret))
        assert.equal(through.status, 200)
        assert.equal(through.body.keyward, null)
        assert.deepEqual(events.map((e) => [e.error.code, e.failOpen]), [['KEYWARD_UNREACHABLE', false], ['KEYWARD_UNREACHABLE', true]])
      } finally {
        await Promise.all([closed.close(), open.close(), nowhere.close()])
      }
    })
  })
}
