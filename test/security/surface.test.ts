import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, request, type IncomingMessage } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { checkWebhookUrl, deliver } from '../../plugins/app/notifications/webhooks.ts'
import { createTestApp, ManualClock, registerUser, TEST_SECRETS, type TestApp } from '../helpers/app.ts'
import { onScopeEnd } from '../helpers/scope.ts'
import { startServer } from '../helpers/server.ts'
import { testDir } from '../helpers/tmp.ts'
import { b64url, signHs256 } from '../helpers/tokens.ts'

const ERROR_KEYS = ['code', 'error', 'message', 'requestId', 'statusCode']

interface Operation { method: string, path: string, secured: boolean, admin: boolean, hasBody: boolean }

/** Every operation of the OpenAPI document: a route added later is covered without editing this file. */
function operations (app: TestApp['app']): Operation[] {
  const doc = app.swagger() as { paths: Record<string, Record<string, { security?: unknown[], tags?: string[], requestBody?: unknown }>> }
  return Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({
    method: method.toUpperCase(),
    path,
    secured: (op.security?.length ?? 0) > 0,
    admin: path.startsWith('/api/system/'),
    hasBody: op.requestBody !== undefined
  })))
}

describe('tokens on every protected operation', () => {
  let t: TestApp
  const clock = new ManualClock()
  before(async () => { t = await createTestApp({ JOBS_EMBEDDED: 'false', GENERAL_RATE_LIMIT_MAX: '100000', VERIFY_FAILURE_LIMIT_MAX: '100000' }, { clock }) })
  after(async () => { await t.close() })

  it('refuse a missing, forged, alg:none, wrong-secret, tampered, expired, refresh-typed, revoked or deleted-account token', async () => {
    const user = await registerUser(t.app)
    const keyId = (await t.app.inject({ method: 'POST', url: '/api/keys', headers: user.headers, payload: { kind: 'issued', name: 'target' } })).json().key.id
    const claims = JSON.parse(Buffer.from(user.accessToken.split('.')[1]!, 'base64url').toString())
    const now = Math.floor(clock.now() / 1000)

    const loggedOut = await registerUser(t.app)
    await t.app.inject({ method: 'POST', url: '/api/auth/logout', headers: loggedOut.headers })
    const deleted = await registerUser(t.app)
    await t.app.inject({ method: 'DELETE', url: '/api/auth/me', headers: deleted.headers, payload: { password: deleted.password } })

    const cases: Array<[string, string | null, string]> = [
      ['no token', null, 'UNAUTHORIZED'],
      ['garbage', 'not.a.jwt', 'INVALID_TOKEN'],
      ['alg none, role admin', `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ ...claims, role: 'admin' })}.`, 'INVALID_TOKEN'],
      ['wrong secret', signHs256({ ...claims, iat: now, exp: now + 600 }, 'an-attacker-secret-0123456789abcdefghij'), 'INVALID_TOKEN'],
      ['tampered payload', `${user.accessToken.split('.')[0]}.${b64url({ ...claims, sub: deleted.user.id })}.${user.accessToken.split('.')[2]}`, 'INVALID_TOKEN'],
      ['HS512 with the real secret', signHs256({ ...claims, iat: now, exp: now + 600 }, TEST_SECRETS.JWT_SECRET, { alg: 'HS512', typ: 'JWT' }), 'INVALID_TOKEN'],
      ['expired (real secret)', signHs256({ ...claims, iat: now - 1000, exp: now - 1 }, TEST_SECRETS.JWT_SECRET), 'TOKEN_EXPIRED'],
      ['refresh-typed (real secret)', signHs256({ ...claims, typ: 'refresh', iat: now, exp: now + 600 }, TEST_SECRETS.JWT_SECRET), 'INVALID_TOKEN'],
      ['session logged out', loggedOut.accessToken, 'SESSION_REVOKED'],
      ['account deleted', deleted.accessToken, 'SESSION_REVOKED']
    ]
    const ops = operations(t.app).filter((o) => o.secured)
    assert.ok(ops.length >= 35, `${ops.length} protected operations`)
    let tried = 0
    for (const op of ops) {
      const url = op.path.replace('{id}', keyId)
      for (const [label, token, code] of cases) {
        tried++
        // Verify validates its body before the caller, so it gets a valid one; every other route authenticates first.
        const payload = op.path === '/api/keys/verify' ? { key: 'kw_x' } : op.hasBody ? {} : undefined
        const res = await t.app.inject({ method: op.method as 'GET', url, headers: token === null ? {} : { authorization: `Bearer ${token}` }, ...(payload === undefined ? {} : { payload }) })
        assert.equal(res.statusCode, 401, `${op.method} ${op.path} with ${label}: ${res.statusCode} ${res.body}`)
        assert.deepEqual(Object.keys(res.json()).sort(), ERROR_KEYS)
        // The verify route resolves its caller through its own path (access token or verify key) and answers one code.
        if (op.path !== '/api/keys/verify') assert.equal(res.json().code, code, `${op.method} ${op.path} with ${label}`)
      }
      if (op.admin) {
        const res = await t.app.inject({ method: op.method as 'GET', url, headers: user.headers })
        assert.equal(res.statusCode, 403, `${op.method} ${op.path} as a plain user`)
      }
    }
    // Control: the real token passes on the same routes.
    assert.equal((await t.app.inject({ method: 'GET', url: `/api/keys/${keyId}`, headers: user.headers })).statusCode, 200)
    console.log(`tokens: ${tried} refused requests over ${ops.length} protected operations`)
  })
})

describe('browser-facing surface', () => {
  let t: TestApp
  let open: TestApp
  before(async () => {
    t = await createTestApp({ JOBS_EMBEDDED: 'false', FRONTEND_URL: 'https://app.example.com', HEAVY_RATE_LIMIT_MAX: '10000', KEY_CREATE_RATE_LIMIT_MAX: '10000' })
    open = await createTestApp({ JOBS_EMBEDDED: 'false' })
  })
  after(async () => {
    await t.close()
    await open.close()
  })

  const STRICT: Record<string, string | RegExp> = {
    'content-security-policy': /^default-src 'none';frame-ancestors 'none'/,
    'strict-transport-security': 'max-age=31536000; includeSubDomains',
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
    'cross-origin-resource-policy': 'same-origin',
    'cross-origin-opener-policy': 'same-origin'
  }
  function assertStrictHeaders (headers: Record<string, unknown>, what: string) {
    for (const [name, want] of Object.entries(STRICT)) {
      const got = String(headers[name])
      if (want instanceof RegExp) assert.match(got, want, `${what}: ${name}`)
      else assert.equal(got, want, `${what}: ${name}`)
    }
    assert.equal(headers['x-powered-by'], undefined, what)
    assert.equal(headers.server, undefined, what)
  }

  it('every answer of every operation, errors included, carries the strict security headers (verify excepted by design)', async () => {
    const user = await registerUser(t.app)
    const keyId = (await t.app.inject({ method: 'POST', url: '/api/keys', headers: user.headers, payload: { kind: 'issued', name: 'x' } })).json().key.id
    let checked = 0
    for (const op of operations(t.app)) {
      const url = op.path.replace('{id}', keyId)
      const answers = [
        await t.app.inject({ method: op.method as 'GET', url, headers: user.headers, ...(op.hasBody ? { payload: {} } : {}) }),
        await t.app.inject({ method: op.method as 'GET', url, ...(op.hasBody ? { payload: { __unknown__: 1 } } : {}) })
      ]
      for (const res of answers) {
        checked++
        if (op.path === '/api/keys/verify') {
          // Machine-to-machine: its JSON is never rendered by a browser, and the headers cost bytes on the hot path.
          assert.equal(res.headers['content-security-policy'], undefined)
          assert.match(String(res.headers['content-type']), /^application\/json/)
          continue
        }
        assertStrictHeaders(res.headers, `${op.method} ${op.path} → ${res.statusCode}`)
      }
    }
    const framework = [
      await t.app.inject({ method: 'GET', url: '/api/no-such-route' }),
      await t.app.inject({ method: 'GET', url: '/api/%E0%A4%A' }),
      await t.app.inject({ method: 'POST', url: '/api/auth/login', payload: '{"email":', headers: { 'content-type': 'application/json' } }),
      await t.app.inject({ method: 'POST', url: '/api/auth/login', payload: 'x'.repeat(1_100_000), headers: { 'content-type': 'application/json' } }),
      await t.app.inject({ method: 'POST', url: '/api/auth/login', payload: 'a=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } })
    ]
    assert.deepEqual(framework.map((r) => r.statusCode), [404, 400, 400, 413, 415])
    for (const res of framework) assertStrictHeaders(res.headers, `framework error ${res.statusCode} ${res.json().code}`)
    console.log(`security headers: ${checked + framework.length} answers checked`)
  })

  it('answers that carry a secret or a token are never cached (Cache-Control: no-store)', async () => {
    const user = await registerUser(t.app, { password: 'no store password' })
    await t.app.inject({ method: 'PUT', url: '/api/vault/passphrase', headers: user.headers, payload: { passphrase: 'no store passphrase' } })
    const held = (await t.app.inject({ method: 'POST', url: '/api/keys', headers: user.headers, payload: { kind: 'held', name: 'h', secret: 'sk_no_store', passphrase: 'no store passphrase' } })).json().key.id
    const issued = await t.app.inject({ method: 'POST', url: '/api/keys', headers: user.headers, payload: { kind: 'issued', name: 'i' } })
    const login = await t.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: user.email, password: user.password } })
    const answers: Record<string, Awaited<ReturnType<typeof t.app.inject>>> = {
      register: await t.app.inject({ method: 'POST', url: '/api/auth/register', payload: { email: 'nostore@example.com', password: 'a long enough password' } }),
      login,
      refresh: await t.app.inject({ method: 'POST', url: '/api/auth/refresh', payload: { refreshToken: login.json().refreshToken } }),
      'create issued key': issued,
      'rotate issued key': await t.app.inject({ method: 'POST', url: `/api/keys/${issued.json().key.id}/rotate`, headers: user.headers, payload: {} }),
      reveal: await t.app.inject({ method: 'POST', url: `/api/keys/${held}/reveal`, headers: user.headers, payload: { passphrase: 'no store passphrase' } }),
      'webhook with generated secret': await t.app.inject({ method: 'PUT', url: '/api/auth/me/webhook', headers: user.headers, payload: { url: 'https://hooks.example.com/x' } })
    }
    for (const [what, res] of Object.entries(answers)) {
      assert.ok(res.statusCode < 300, `${what}: ${res.statusCode} ${res.body}`)
      assert.equal(res.headers['cache-control'], 'no-store', what)
    }
  })

  it('CORS: only FRONTEND_URL origins, never with credentials; none at all when FRONTEND_URL is empty', async () => {
    const preflight = (app: TestApp, origin: string) => app.app.inject({ method: 'OPTIONS', url: '/api/keys', headers: { origin, 'access-control-request-method': 'DELETE', 'access-control-request-headers': 'authorization' } })
    const allowed = await preflight(t, 'https://app.example.com')
    assert.equal(allowed.statusCode, 204)
    assert.equal(allowed.headers['access-control-allow-origin'], 'https://app.example.com')
    assert.equal(allowed.headers['access-control-allow-credentials'], undefined, 'no cookies or HTTP auth cross-origin')
    assert.match(String(allowed.headers.vary), /Origin/i, 'caches keep answers per origin')
    assert.match(String(allowed.headers['access-control-allow-headers']), /Authorization/i)

    for (const origin of ['https://evil.example.com', 'https://app.example.com.evil.com', 'http://app.example.com', 'null']) {
      const denied = await preflight(t, origin)
      assert.equal(denied.headers['access-control-allow-origin'], undefined, origin)
      const simple = await t.app.inject({ method: 'GET', url: '/api/health', headers: { origin } })
      assert.equal(simple.headers['access-control-allow-origin'], undefined, `${origin} (simple request)`)
    }
    for (const origin of ['https://app.example.com', 'https://anything.example.com']) {
      assert.equal((await preflight(open, origin)).headers['access-control-allow-origin'], undefined, `no FRONTEND_URL: ${origin}`)
      assert.equal((await open.app.inject({ method: 'GET', url: '/api/health', headers: { origin } })).headers['access-control-allow-origin'], undefined)
    }
  })
})

describe('request size limits', () => {
  it('every operation with a body refuses one byte over BODY_LIMIT with 413 before any handler runs', async (ctx) => {
    const t = await createTestApp(ctx, { JOBS_EMBEDDED: 'false', BODY_LIMIT: '4096', AUTH_RATE_LIMIT_MAX: '100000' })
    const user = await registerUser(t.app)
    const keyId = (await t.app.inject({ method: 'POST', url: '/api/keys', headers: user.headers, payload: { kind: 'issued', name: 'x' } })).json().key.id
    const ops = operations(t.app).filter((o) => o.hasBody)
    assert.ok(ops.length >= 15, `${ops.length} operations with bodies`)
    for (const op of ops) {
      const url = op.path.replace('{id}', keyId)
      const padded = (size: number) => {
        const body = JSON.stringify({ pad: '' })
        return JSON.stringify({ pad: 'x'.repeat(size - body.length) })
      }
      const over = await t.app.inject({ method: op.method as 'POST', url, headers: { ...user.headers, 'content-type': 'application/json' }, payload: padded(4097) })
      assert.equal(over.statusCode, 413, `${op.method} ${op.path}: ${over.body}`)
      assert.equal(over.json().code, 'PAYLOAD_TOO_LARGE')
      const at = await t.app.inject({ method: op.method as 'POST', url, headers: { ...user.headers, 'content-type': 'application/json' }, payload: padded(4096) })
      assert.notEqual(at.statusCode, 413, `${op.method} ${op.path}: a body at the limit is read (and refused for its content)`)
    }
    assert.equal((await t.app.inject({ method: 'GET', url: '/api/auth/me', headers: user.headers })).statusCode, 200, 'the account is intact')
  })

  it('the real server refuses an over-limit chunked body and oversized headers, and keeps serving', async (ctx) => {
    const server = await startServer({ DATA_DIR: await testDir(ctx, 'limits') })
    onScopeEnd(ctx, () => server.stop())
    // Chunked: no Content-Length to refuse up front; the limit is enforced while reading.
    const chunked = await new Promise<{ status: number, body: string }>((resolve, reject) => {
      const req = request(`${server.url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
        let body = ''
        res.on('data', (c) => { body += c })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      })
      req.on('error', (err: NodeJS.ErrnoException) => { if (err.code !== 'EPIPE' && err.code !== 'ECONNRESET') reject(err) })
      // A reset that loses the answer fails here instead of leaving the test waiting for ever.
      req.on('close', () => reject(new Error('the connection closed before the whole answer to the chunked body arrived')))
      const chunk = Buffer.alloc(64 * 1024, 0x20)
      let sent = 0
      const pump = () => { while (sent < 40 && req.write(chunk)) sent++; if (sent < 40) { sent++; req.once('drain', pump) } else req.end() }
      pump()
    })
    assert.equal(chunked.status, 413)
    assert.equal(JSON.parse(chunked.body).code, 'PAYLOAD_TOO_LARGE')

    const bigHeaders = await fetch(`${server.url}/api/health`, { headers: { 'x-filler': 'x'.repeat(20_000) } })
    assert.equal(bigHeaders.status, 431, 'headers over 16 KiB')

    assert.equal((await fetch(`${server.url}/api/health`)).status, 200, 'still serving')
  })
})

describe('webhook SSRF', () => {
  it('refuses every literal spelling of loopback, private, link-local, CGNAT and mapped addresses when set', async (ctx) => {
    const t = await createTestApp(ctx, { JOBS_EMBEDDED: 'false' })
    const user = await registerUser(t.app)
    const targets = [
      'http://127.1/', 'http://2130706433/', 'http://0x7f.0.0.1/', 'http://0177.0.0.1/', 'http://0.0.0.0/', 'http://[::ffff:127.0.0.1]/',
      'http://[::ffff:7f00:1]/', 'http://[fd00::1]/', 'http://[fe80::1]/', 'http://100.64.0.1/', 'http://172.31.255.255/', 'http://198.18.0.1/',
      'http://169.254.169.254/latest/meta-data/', 'http://LOCALHOST/', 'http://localhost./', 'http://api.localhost/', 'http://[::]/',
      'file:///etc/passwd', 'gopher://127.0.0.1:6379/_FLUSHALL'
    ]
    for (const url of targets) {
      const res = await t.app.inject({ method: 'PUT', url: '/api/auth/me/webhook', headers: user.headers, payload: { url } })
      assert.equal(res.statusCode, 400, `${url}: ${res.body}`)
      assert.equal(res.json().code, 'WEBHOOK_URL_FORBIDDEN', url)
    }
    assert.equal((await t.app.inject({ method: 'PUT', url: '/api/auth/me/webhook', headers: user.headers, payload: { url: 'https://hooks.example.com/ok' } })).statusCode, 200, 'a public name is accepted')
  })

  it('a delivery never follows a redirect (a public receiver cannot bounce it to an internal address)', async (ctx) => {
    const hits: string[] = []
    const internal = createServer((req: IncomingMessage, res) => { hits.push(String(req.url)); res.end() })
    internal.listen(0, '127.0.0.1')
    onScopeEnd(ctx, () => { internal.close() })
    await once(internal, 'listening')
    const internalUrl = `http://127.0.0.1:${(internal.address() as { port: number }).port}/internal`
    const bouncer = createServer((_req, res) => { res.statusCode = 307; res.setHeader('location', internalUrl); res.end() })
    bouncer.listen(0, '127.0.0.1')
    onScopeEnd(ctx, () => { bouncer.close() })
    await once(bouncer, 'listening')
    // allowPrivate lets the test reach its own receiver; the redirect must still not be followed.
    const url = `http://127.0.0.1:${(bouncer.address() as { port: number }).port}/hook`
    await assert.rejects(deliver(url, '{}', 'whsec_redirect_test', { allowPrivate: true, timeoutMs: 2000, eventId: 'e1' }), /HTTP 307/)
    assert.deepEqual(hits, [], 'the redirect target was never called')
    assert.throws(() => checkWebhookUrl(internalUrl, false), /not allowed/, 'and the target itself is refused')
  })
})
