import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createInstances, createTestApp, ManualClock, registerUser, TEST_SECRETS, type TestApp } from '../helpers/app.ts'
import { oneConnection } from '../helpers/one-connection.ts'
import { testDir } from '../helpers/tmp.ts'
import { b64url, signHs256 } from '../helpers/tokens.ts'
import { anonymousOwner } from '../../plugins/app/store/shared.ts'
import { keyFixture } from '../store/contract/fixtures.ts'

const ERROR_KEYS = ['code', 'error', 'message', 'requestId', 'statusCode']

const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number

/** How long a refused login takes, in milliseconds. */
async function failedLoginMs (t: TestApp, email: string, password: string) {
  const started = performance.now()
  const res = await t.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email, password } })
  assert.equal(res.statusCode, 401)
  return performance.now() - started
}

describe('auth routes', () => {
  let t: TestApp
  const clock = new ManualClock()
  before(async () => { t = await createTestApp({ AUTH_RATE_LIMIT_MAX: '10000', ADMIN_EMAILS: 'chief@example.com' }, { clock }) })
  after(async () => { await t.close() })

  const get = (url: string, headers: Record<string, string>) => t.app.inject({ method: 'GET', url, headers })
  const post = (url: string, payload?: object, headers: Record<string, string> = {}) =>
    t.app.inject({ method: 'POST', url, payload, headers })

  describe('register', () => {
    it('creates an account, normalises the email and returns the user with a token pair', async () => {
      const res = await post('/api/auth/register', { email: '  Ada.Lovelace@Example.COM ', password: 'analytical engine 1843', name: ' Ada ' })
      assert.equal(res.statusCode, 201)
      const body = res.json()
      assert.equal(body.user.email, 'ada.lovelace@example.com')
      assert.equal(body.user.name, 'Ada')
      assert.equal(body.user.role, 'user')
      assert.equal(body.tokenType, 'Bearer')
      assert.equal(body.expiresIn, 900)
      assert.match(body.refreshToken, /^rt_[A-Za-z0-9_-]{43}$/)
      assert.deepEqual(Object.keys(body.user).sort(), ['createdAt', 'email', 'id', 'name', 'role', 'updatedAt'])
      assert.doesNotMatch(res.body, /scrypt|passwordHash|analytical engine/)
    })

    it('refuses a duplicate email in any case with 409 EMAIL_TAKEN', async () => {
      const user = await registerUser(t.app)
      const res = await post('/api/auth/register', { email: user.email.toUpperCase(), password: 'another long password' })
      assert.equal(res.statusCode, 409)
      assert.equal(res.json().code, 'EMAIL_TAKEN')
    })

    it('refuses a password equal to the email', async () => {
      const res = await post('/api/auth/register', { email: 'same-as-pass@example.com', password: 'Same-As-Pass@example.com' })
      assert.equal(res.statusCode, 400)
      assert.equal(res.json().code, 'WEAK_PASSWORD')
      assert.equal(await t.app.store.findUserByEmail('same-as-pass@example.com'), null)
    })

    it('promotes ADMIN_EMAILS to admin on register', async () => {
      const admin = await registerUser(t.app, { email: 'Chief@Example.com' })
      assert.equal(admin.user.role, 'admin')
      assert.equal((await get('/api/system/info', admin.headers)).statusCode, 200)
    })
  })

  describe('login', () => {
    it('signs in with the right password and refuses a wrong one or an unknown email identically', async () => {
      const user = await registerUser(t.app)
      const ok = await post('/api/auth/login', { email: ` ${user.email.toUpperCase()} `, password: user.password })
      assert.equal(ok.statusCode, 200)
      assert.equal(ok.json().user.id, user.user.id)
      const wrong = await post('/api/auth/login', { email: user.email, password: 'not the password' })
      const unknown = await post('/api/auth/login', { email: 'nobody-here@example.com', password: 'not the password' })
      const malformed = await post('/api/auth/login', { email: 'not-an-email', password: 'not the password' })
      for (const res of [wrong, unknown, malformed]) {
        assert.equal(res.statusCode, 401)
        const { requestId, ...rest } = res.json()
        assert.ok(requestId)
        assert.deepEqual(rest, { statusCode: 401, code: 'INVALID_CREDENTIALS', error: 'Unauthorized', message: 'Email or password is wrong' })
      }
    })
  })

  describe('tokens and sessions', () => {
    it('an access token expires after its lifetime (injected clock) and the refresh token still works', async () => {
      const user = await registerUser(t.app)
      assert.equal((await get('/api/auth/me', user.headers)).statusCode, 200)
      clock.advance(899_000)
      assert.equal((await get('/api/auth/me', user.headers)).statusCode, 200)
      clock.advance(1_000)
      const expired = await get('/api/auth/me', user.headers)
      assert.equal(expired.statusCode, 401)
      assert.equal(expired.json().code, 'TOKEN_EXPIRED')
      const refreshed = await post('/api/auth/refresh', { refreshToken: user.refreshToken })
      assert.equal(refreshed.statusCode, 200)
      assert.equal((await get('/api/auth/me', { authorization: `Bearer ${refreshed.json().accessToken}` })).statusCode, 200)
    })

    it('rotates refresh tokens; a reused one revokes the whole session family', async () => {
      const user = await registerUser(t.app)
      const first = await post('/api/auth/refresh', { refreshToken: user.refreshToken })
      assert.equal(first.statusCode, 200)
      const pair = first.json()
      assert.notEqual(pair.refreshToken, user.refreshToken)
      assert.notEqual(pair.accessToken, user.accessToken)

      const reuse = await post('/api/auth/refresh', { refreshToken: user.refreshToken })
      assert.equal(reuse.statusCode, 401)
      assert.equal(reuse.json().code, 'REFRESH_TOKEN_REUSED')

      const newest = await post('/api/auth/refresh', { refreshToken: pair.refreshToken })
      assert.equal(newest.statusCode, 401, 'the newest token of the family is dead too')
      const me = await get('/api/auth/me', { authorization: `Bearer ${pair.accessToken}` })
      assert.equal(me.statusCode, 401)
      assert.equal(me.json().code, 'SESSION_REVOKED')
    })

    it('refuses unknown refresh tokens', async () => {
      const res = await post('/api/auth/refresh', { refreshToken: 'rt_made-up' })
      assert.equal(res.statusCode, 401)
      assert.equal(res.json().code, 'INVALID_REFRESH_TOKEN')
    })

    it('refuses forged, alg:none, wrong-secret, tampered and non-bearer tokens', async () => {
      const user = await registerUser(t.app)
      const [head, payload] = user.accessToken.split('.') as [string, string]
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString())
      const now = Math.floor(clock.now() / 1000)
      const cases: Record<string, string> = {
        'alg none': `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ ...claims, role: 'admin' })}.`,
        'wrong secret': signHs256({ ...claims, iat: now, exp: now + 600 }, 'not-the-server-secret-at-all-000000000'),
        'tampered payload': `${head}.${b64url({ ...claims, role: 'admin' })}.${user.accessToken.split('.')[2]}`,
        'HS512 with the real secret': signHs256({ ...claims, iat: now, exp: now + 600 }, TEST_SECRETS.JWT_SECRET, { alg: 'HS512', typ: 'JWT' }),
        garbage: 'not.a.jwt'
      }
      for (const [label, token] of Object.entries(cases)) {
        const res = await get('/api/auth/me', { authorization: `Bearer ${token}` })
        assert.equal(res.statusCode, 401, label)
        assert.equal(res.json().code, 'INVALID_TOKEN', label)
      }
      const noScheme = await get('/api/auth/me', { authorization: user.accessToken })
      assert.equal(noScheme.statusCode, 401)
      assert.equal(noScheme.json().code, 'UNAUTHORIZED')
      const none = await t.app.inject({ method: 'GET', url: '/api/auth/me' })
      assert.equal(none.statusCode, 401)
      assert.deepEqual(Object.keys(none.json()).sort(), ERROR_KEYS)
    })

    it('a token signed with the real secret but another type is refused', async () => {
      const user = await registerUser(t.app)
      const now = Math.floor(clock.now() / 1000)
      const token = signHs256({ sub: user.user.id, role: 'admin', sid: 'x', typ: 'refresh', iat: now, exp: now + 600 }, TEST_SECRETS.JWT_SECRET)
      const res = await get('/api/auth/me', { authorization: `Bearer ${token}` })
      assert.equal(res.statusCode, 401)
    })

    it('logout ends this session only; logout-all ends every session', async () => {
      const user = await registerUser(t.app)
      const second = (await post('/api/auth/login', { email: user.email, password: user.password })).json()
      const third = (await post('/api/auth/login', { email: user.email, password: user.password })).json()
      const h2 = { authorization: `Bearer ${second.accessToken}` }
      const h3 = { authorization: `Bearer ${third.accessToken}` }

      const sessions = (await get('/api/auth/sessions', h2)).json()
      assert.equal(sessions.items.length, 3)
      assert.equal(sessions.items.filter((s: { current: boolean }) => s.current).length, 1)

      assert.equal((await post('/api/auth/logout', undefined, user.headers)).statusCode, 204)
      assert.equal((await get('/api/auth/me', user.headers)).json().code, 'SESSION_REVOKED')
      assert.equal((await post('/api/auth/refresh', { refreshToken: user.refreshToken })).statusCode, 401)
      assert.equal((await get('/api/auth/me', h2)).statusCode, 200)

      const all = await post('/api/auth/logout-all', undefined, h2)
      assert.equal(all.statusCode, 200)
      assert.equal(all.json().revoked, 2)
      assert.equal((await get('/api/auth/me', h2)).statusCode, 401)
      assert.equal((await get('/api/auth/me', h3)).statusCode, 401)
    })

    it('one session can be ended by id; another user\'s session id is not found', async () => {
      const a = await registerUser(t.app)
      const b = await registerUser(t.app)
      const aSecond = (await post('/api/auth/login', { email: a.email, password: a.password })).json()
      const bSessions = (await get('/api/auth/sessions', b.headers)).json().items
      const cross = await t.app.inject({ method: 'DELETE', url: `/api/auth/sessions/${bSessions[0].id}`, headers: a.headers })
      assert.equal(cross.statusCode, 404)
      assert.equal((await get('/api/auth/me', b.headers)).statusCode, 200, 'B is untouched')
      const aSessionId = JSON.parse(Buffer.from(aSecond.accessToken.split('.')[1], 'base64url').toString()).sid
      assert.equal((await t.app.inject({ method: 'DELETE', url: `/api/auth/sessions/${aSessionId}`, headers: a.headers })).statusCode, 204)
      assert.equal((await get('/api/auth/me', { authorization: `Bearer ${aSecond.accessToken}` })).statusCode, 401)
      assert.equal((await t.app.inject({ method: 'DELETE', url: '/api/auth/sessions/not-an-id', headers: a.headers })).statusCode, 404)
    })
  })

  describe('the account', () => {
    it('reads and renames the user; role, email and hash cannot be assigned', async () => {
      const user = await registerUser(t.app)
      const renamed = await t.app.inject({ method: 'PATCH', url: '/api/auth/me', headers: user.headers, payload: { name: 'Grace' } })
      assert.equal(renamed.statusCode, 200)
      assert.equal(renamed.json().name, 'Grace')
      for (const payload of [{ name: 'x', role: 'admin' }, { email: 'new@example.com' }, { passwordHash: 'x' }, { role: 'admin' }]) {
        const res = await t.app.inject({ method: 'PATCH', url: '/api/auth/me', headers: user.headers, payload })
        assert.equal(res.statusCode, 400)
        assert.equal(res.json().code, 'VALIDATION_FAILED')
      }
      const me = (await get('/api/auth/me', user.headers)).json()
      assert.equal(me.name, 'Grace')
      assert.equal(me.role, 'user')
      assert.equal(me.email, user.email)
      const cleared = await t.app.inject({ method: 'PATCH', url: '/api/auth/me', headers: user.headers, payload: { name: null } })
      assert.equal(cleared.json().name, null)
    })

    it('changes the password: checks the current one, ends every other session', async () => {
      const user = await registerUser(t.app)
      const other = (await post('/api/auth/login', { email: user.email, password: user.password })).json()
      const wrong = await post('/api/auth/change-password', { currentPassword: 'not it at all', newPassword: 'a brand new password' }, user.headers)
      assert.equal(wrong.statusCode, 403)
      assert.equal(wrong.json().code, 'WRONG_PASSWORD')
      assert.equal((await get('/api/auth/me', { authorization: `Bearer ${other.accessToken}` })).statusCode, 200, 'nothing changed')

      const ok = await post('/api/auth/change-password', { currentPassword: user.password, newPassword: 'a brand new password' }, user.headers)
      assert.equal(ok.statusCode, 204)
      assert.equal((await get('/api/auth/me', user.headers)).statusCode, 200, 'this session stays')
      assert.equal((await get('/api/auth/me', { authorization: `Bearer ${other.accessToken}` })).statusCode, 401)
      assert.equal((await post('/api/auth/login', { email: user.email, password: user.password })).statusCode, 401)
      assert.equal((await post('/api/auth/login', { email: user.email, password: 'a brand new password' })).statusCode, 200)
    })

    it('exports everything the account owns, without secrets', async () => {
      const user = await registerUser(t.app)
      const key = await t.app.store.createKey(user.user.id, keyFixture({ name: 'exported', hash: 'secret-lookup-hash-value' }))
      const res = await get('/api/auth/me/export', user.headers)
      assert.equal(res.statusCode, 200)
      const body = res.json()
      assert.equal(body.user.id, user.user.id)
      assert.equal(body.sessions.length, 1)
      assert.deepEqual(body.keys.map((k: { id: string }) => k.id), [key.id])
      assert.doesNotMatch(res.body, /secret-lookup-hash-value|scrypt|rt_/)
    })

    it('deletes the account and everything it owns, with the password', async () => {
      const user = await registerUser(t.app)
      const key = await t.app.store.createKey(user.user.id, keyFixture())
      const wrong = await t.app.inject({ method: 'DELETE', url: '/api/auth/me', headers: user.headers, payload: { password: 'not the password' } })
      assert.equal(wrong.statusCode, 403)
      assert.equal(wrong.json().code, 'WRONG_PASSWORD')
      assert.ok(await t.app.store.getUser(user.user.id))

      const res = await t.app.inject({ method: 'DELETE', url: '/api/auth/me', headers: user.headers, payload: { password: user.password } })
      assert.equal(res.statusCode, 204)
      assert.equal(await t.app.store.getUser(user.user.id), null)
      assert.equal(await t.app.store.getKey(user.user.id, key.id), null)
      assert.deepEqual(await t.app.store.listSessions(user.user.id), [])
      assert.equal((await get('/api/auth/me', user.headers)).statusCode, 401)
      assert.equal((await post('/api/auth/login', { email: user.email, password: user.password })).statusCode, 401)
      assert.equal((await post('/api/auth/refresh', { refreshToken: user.refreshToken })).statusCode, 401)
      const kept = await t.app.store.auditChain(anonymousOwner(user.user.id), 0, 100)
      assert.ok(kept.length >= 2 && kept.every((e) => e.anonymised && e.ip === null && e.sessionId === null), 'the events stay, anonymised')
      assert.deepEqual(await t.app.audit.verify(anonymousOwner(user.user.id)),
        { valid: true, events: kept.length, brokenAt: null, lastHash: kept[kept.length - 1]!.hash }, 'and their chain verifies')
    })
  })

  describe('account deletion in two phases', () => {
    const issue = async (headers: Record<string, string>, body: Record<string, unknown> = {}) => {
      const res = await t.app.inject({ method: 'POST', url: '/api/keys', headers, payload: { kind: 'issued', name: 'k', ...body } })
      assert.equal(res.statusCode, 201, res.body)
      return res.json() as { key: { id: string }, secret: string }
    }
    const verify = (secret: string, key: string) => t.app.inject({ method: 'POST', url: '/api/keys/verify', headers: { authorization: `Bearer ${secret}` }, payload: { key } })

    it('a deleted account\'s verify key stops at once, and its email registers a new, empty account', async () => {
      const user = await registerUser(t.app)
      const target = await issue(user.headers)
      const root = await issue(user.headers, { scopes: ['keyward:verify'] })
      assert.equal((await verify(root.secret, target.secret)).json().code, 'VALID')

      const res = await t.app.inject({ method: 'DELETE', url: '/api/auth/me', headers: user.headers, payload: { password: user.password } })
      assert.equal(res.statusCode, 204)
      assert.equal((await verify(root.secret, target.secret)).statusCode, 401, 'its keys no longer verify')
      assert.deepEqual(await t.app.store.listDeletedUsers(100), [], 'deleteAccount purged at once')

      const again = await registerUser(t.app, { email: user.email, password: 'another long passphrase' })
      assert.notEqual(again.user.id, user.user.id)
      assert.equal((await post('/api/auth/login', { email: user.email, password: user.password })).statusCode, 401, 'the old password opens nothing')
      assert.equal((await post('/api/auth/login', { email: user.email, password: 'another long passphrase' })).statusCode, 200)
      const keys = await t.app.inject({ method: 'GET', url: '/api/keys', headers: again.headers })
      assert.deepEqual(keys.json().items, [], 'nothing of the deleted account')
      assert.equal((await verify(root.secret, target.secret)).statusCode, 401)
    })

    it('an account marked deleted but not yet purged cannot sign in, refresh or verify, and does not hold its email', async () => {
      const user = await registerUser(t.app)
      const target = await issue(user.headers)
      const root = await issue(user.headers, { scopes: ['keyward:verify'] })
      assert.equal(await t.app.store.markUserDeleted(user.user.id, Date.now()), true)
      assert.equal((await post('/api/auth/login', { email: user.email, password: user.password })).statusCode, 401)
      assert.equal((await post('/api/auth/refresh', { refreshToken: user.refreshToken })).statusCode, 401)
      assert.equal((await verify(root.secret, target.secret)).statusCode, 401)
      assert.ok(await t.app.store.getKey(user.user.id, target.key.id), 'its data waits for the purge')
      const again = await registerUser(t.app, { email: user.email })
      assert.notEqual(again.user.id, user.user.id)
      assert.deepEqual(await t.app.store.listDeletedUsers(100), [user.user.id])
      assert.ok(await t.app.store.purgeDeletedUser(user.user.id, 1_000) > 0, 'one batch holds it all, and finishes the purge')
      assert.deepEqual(await t.app.store.listDeletedUsers(100), [])
    })
  })

  describe('roles', () => {
    it('admin routes refuse users with 403 and admit admins; a demotion applies at once', async () => {
      const user = await registerUser(t.app)
      const forbidden = await get('/api/system/info', user.headers)
      assert.equal(forbidden.statusCode, 403)
      assert.equal(forbidden.json().code, 'FORBIDDEN')
      await t.app.auth.setRole(user.email, 'admin')
      assert.equal((await get('/api/system/info', user.headers)).statusCode, 200, 'promotion applies to the live token')
      await t.app.auth.setRole(user.email, 'user')
      assert.equal((await get('/api/system/info', user.headers)).statusCode, 403, 'demotion applies to the live token')
    })
  })

  describe('bad input changes nothing', () => {
    const huge = 'a'.repeat(10 * 1024) + '@example.com'
    const bodies: Array<[string, string, unknown]> = [
      ['/api/auth/register', 'missing password', { email: 'fresh1@example.com' }],
      ['/api/auth/register', 'missing email', { password: 'long enough password' }],
      ['/api/auth/register', 'wrong types', { email: 42, password: true }],
      ['/api/auth/register', '10 KB email', { email: huge, password: 'long enough password' }],
      ['/api/auth/register', 'short password', { email: 'fresh2@example.com', password: 'short' }],
      ['/api/auth/register', 'long password', { email: 'fresh3@example.com', password: 'x'.repeat(257) }],
      ['/api/auth/register', 'extra field', { email: 'fresh4@example.com', password: 'long enough password', role: 'admin' }],
      ['/api/auth/register', 'cyrillic lookalike email', { email: 'аdmin@example.com', password: 'long enough password' }],
      ['/api/auth/register', 'email with NUL', { email: 'fresh5\u0000@example.com', password: 'long enough password' }],
      ['/api/auth/register', 'bidi override in name', { email: 'fresh6@example.com', password: 'long enough password', name: 'evil\u202Eexe.txt' }],
      ['/api/auth/register', 'newline in name', { email: 'fresh7@example.com', password: 'long enough password', name: 'a\nb' }],
      ['/api/auth/register', 'array body', [{ email: 'fresh8@example.com' }]],
      ['/api/auth/login', 'missing password', { email: 'fresh@example.com' }],
      ['/api/auth/login', 'object password', { email: 'fresh@example.com', password: { $ne: '' } }],
      ['/api/auth/refresh', 'empty token', { refreshToken: '' }],
      ['/api/auth/refresh', 'huge token', { refreshToken: 'r'.repeat(10_000) }],
      ['/api/auth/refresh', 'extra field', { refreshToken: 'x', userId: '1' }]
    ]
    for (const [url, label, payload] of bodies) {
      it(`${url}: ${label} is a 4xx in the error shape`, async () => {
        const res = await t.app.inject({ method: 'POST', url, payload: payload as object })
        assert.ok(res.statusCode >= 400 && res.statusCode < 500, `${res.statusCode} ${res.body}`)
        assert.deepEqual(Object.keys(res.json()).sort(), ERROR_KEYS)
      })
    }

    it('none of those created an account', async () => {
      for (let i = 1; i <= 8; i++) assert.equal(await t.app.store.findUserByEmail(`fresh${i}@example.com`), null)
      assert.equal(await t.app.store.findUserByEmail('admin@example.com'), null)
    })

    it('a field the route does not take is named as not allowed, not reported as another one missing', async () => {
      const user = await registerUser(t.app)
      const cases: Array<[string, string, object, string]> = [
        ['PATCH', '/api/auth/me', { email: 'new@example.com' }, "body has an unknown field 'email'"],
        ['PATCH', '/api/auth/me', { name: 'Grace', email: 'new@example.com' }, "body has an unknown field 'email'"],
        ['POST', '/api/auth/login', { emial: user.email, password: user.password }, "body has an unknown field 'emial'"],
        ['PATCH', '/api/auth/me', {}, "body is missing the required field 'name'"]
      ]
      for (const [method, url, payload, message] of cases) {
        const res = await t.app.inject({ method: method as 'POST', url, headers: user.headers, payload })
        assert.equal(res.statusCode, 400)
        assert.deepEqual(Object.keys(res.json()).sort(), ERROR_KEYS)
        assert.equal(res.json().code, 'VALIDATION_FAILED')
        assert.equal(res.json().message, message, `${method} ${url} ${JSON.stringify(payload)}`)
      }
      assert.equal((await get('/api/auth/me', user.headers)).json().email, user.email)
    })

    it('a body that is not JSON is 415 UNSUPPORTED_MEDIA_TYPE, never parsed', async () => {
      const user = await registerUser(t.app)
      const cases: Array<[string, string, string]> = [
        ['POST', '/api/auth/register', JSON.stringify({ email: 'plain@example.com', password: 'a long enough password' })],
        ['PATCH', '/api/auth/me', '{"name":"Plain"}'],
        ['POST', '/api/keys/verify', '{"key":"kw_x"}'],
        ['POST', '/api/auth/login', 'hello']
      ]
      for (const contentType of ['text/plain', 'text/plain; charset=utf-8', 'application/x-www-form-urlencoded']) {
        for (const [method, url, payload] of cases) {
          const res = await t.app.inject({ method: method as 'POST', url, headers: { ...user.headers, 'content-type': contentType }, payload })
          assert.equal(res.statusCode, 415, `${contentType} ${method} ${url}: ${res.body}`)
          assert.deepEqual(Object.keys(res.json()).sort(), ERROR_KEYS)
          assert.equal(res.json().code, 'UNSUPPORTED_MEDIA_TYPE')
        }
      }
      assert.equal(await t.app.store.findUserByEmail('plain@example.com'), null)
      assert.equal((await get('/api/auth/me', user.headers)).json().name, null)
    })

    it('protected routes validate their bodies too, and change nothing', async () => {
      const user = await registerUser(t.app)
      const cases: Array<[string, string, unknown]> = [
        ['PATCH', '/api/auth/me', { name: 'x'.repeat(101) }],
        ['PATCH', '/api/auth/me', { name: 5 }],
        ['PATCH', '/api/auth/me', {}],
        ['POST', '/api/auth/change-password', { currentPassword: user.password }],
        ['POST', '/api/auth/change-password', { currentPassword: user.password, newPassword: 'short' }],
        ['POST', '/api/auth/change-password', { currentPassword: user.password, newPassword: user.email }],
        ['DELETE', '/api/auth/me', {}],
        ['DELETE', '/api/auth/me', { password: user.password, force: true }]
      ]
      for (const [method, url, payload] of cases) {
        const res = await t.app.inject({ method: method as 'POST', url, headers: user.headers, payload: payload as object })
        assert.ok(res.statusCode >= 400 && res.statusCode < 500, `${method} ${url} ${JSON.stringify(payload)}: ${res.statusCode}`)
        assert.deepEqual(Object.keys(res.json()).sort(), ERROR_KEYS)
      }
      assert.equal((await post('/api/auth/login', { email: user.email, password: user.password })).statusCode, 200, 'password unchanged')
      assert.ok(await t.app.store.getUser(user.user.id), 'account not deleted')
    })
  })

  it('no log line contains a password, a password hash or a token', async () => {
    const user = await registerUser(t.app, { password: 'a password to look for' })
    await post('/api/auth/login', { email: user.email, password: 'wrong password to look for' })
    await post('/api/auth/refresh', { refreshToken: user.refreshToken })
    await post('/api/auth/refresh', { refreshToken: user.refreshToken })
    const stored = await t.app.store.getUser(user.user.id)
    const logs = t.logs.text()
    assert.ok(logs.length > 0, 'the app did log')
    for (const secret of ['a password to look for', 'wrong password to look for', user.accessToken, user.refreshToken, stored!.passwordHash, TEST_SECRETS.JWT_SECRET]) {
      assert.equal(logs.includes(secret), false, `log contains ${secret.slice(0, 12)}...`)
    }
  })
})

describe('auth tier rate limit', () => {
  let t: TestApp
  before(async () => { t = await createTestApp({ AUTH_RATE_LIMIT_MAX: '3' }) })
  after(async () => { await t.close() })

  it('shares one count per IP across the credential routes, answers 429 RATE_LIMITED with headers, and never limits /me', async () => {
    const user = await registerUser(t.app)
    const first = await t.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: user.email, password: user.password } })
    assert.equal(first.statusCode, 200)
    assert.equal(first.headers['ratelimit-limit'], '3')
    assert.equal(first.headers['ratelimit-remaining'], '1')
    assert.equal((await t.app.inject({ method: 'POST', url: '/api/auth/refresh', payload: { refreshToken: 'rt_x' } })).statusCode, 401)
    const limited = await t.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: user.email, password: user.password } })
    assert.equal(limited.statusCode, 429)
    assert.equal(limited.json().code, 'RATE_LIMITED')
    assert.deepEqual(Object.keys(limited.json()).sort(), ERROR_KEYS)
    assert.ok(Number(limited.headers['retry-after']) > 0)
    assert.equal(limited.headers['ratelimit-remaining'], '0')
    const otherIp = await t.app.inject({ method: 'POST', url: '/api/auth/login', remoteAddress: '10.9.8.7', payload: { email: user.email, password: user.password } })
    assert.equal(otherIp.statusCode, 200, 'another client IP has its own count')
    for (let i = 0; i < 20; i++) {
      assert.equal((await t.app.inject({ method: 'GET', url: '/api/auth/me', headers: user.headers })).statusCode, 200)
    }
  })
})

describe('password hashing cost', () => {
  it('re-hashes with raised parameters at the next login', async (ctx) => {
    const dataDir = await testDir(ctx, 'rehash')
    const low = await createTestApp(ctx, { PASSWORD_HASH_COST: '10' }, { dataDir })
    const user = await registerUser(low.app)
    assert.match((await low.app.store.getUser(user.user.id))!.passwordHash, /^scrypt\$ln=10,r=8,p=1\$/)
    await low.close()
    const high = await createTestApp(ctx, { PASSWORD_HASH_COST: '11' }, { dataDir })
    const res = await high.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: user.email, password: user.password } })
    assert.equal(res.statusCode, 200)
    assert.match((await high.app.store.getUser(user.user.id))!.passwordHash, /^scrypt\$ln=11,r=8,p=1\$/)
    const again = await high.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: user.email, password: user.password } })
    assert.equal(again.statusCode, 200)
  })

  it('promotes from ADMIN_EMAILS only at registration, so a demotion sticks (issue 14, finding 8)', async (ctx) => {
    const dataDir = await testDir(ctx, 'promote')
    const before = await createTestApp(ctx, {}, { dataDir })
    const late = await registerUser(before.app, { email: 'late-admin@example.com' })
    assert.equal(late.user.role, 'user')
    await before.close()
    const afterApp = await createTestApp(ctx, { ADMIN_EMAILS: 'late-admin@example.com,listed-admin@example.com' }, { dataDir })
    const login = (u: { email: string, password: string }) =>
      afterApp.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: u.email, password: u.password } })
    assert.equal((await login(late)).json().user.role, 'user', 'an account registered before it was listed is promoted with the admin command')
    const listed = await registerUser(afterApp.app, { email: 'listed-admin@example.com' })
    assert.equal(listed.user.role, 'admin')
    await afterApp.app.auth.setRole(listed.email, 'user')
    assert.equal((await login(listed)).json().user.role, 'user', 'the demotion holds at the next login')
  })

  it('answers a wrong password for an account hashed at an older cost no sooner than an unknown email (issue 14, finding 7)', async (ctx) => {
    const dataDir = await testDir(ctx, 'legacy-cost')
    const low = await createTestApp(ctx, { PASSWORD_HASH_COST: '10' }, { dataDir })
    const user = await registerUser(low.app)
    await low.close()
    const current = await createTestApp(ctx, { PASSWORD_HASH_COST: '15' }, { dataDir })
    const timed = (email: string) => failedLoginMs(current, email, 'not the password at all')
    const unknown: number[] = []
    const legacy: number[] = []
    for (let i = 0; i < 7; i++) {
      unknown.push(await timed(`nobody-${i}@example.com`))
      legacy.push(await timed(user.email))
    }
    // A check at cost 10 takes 1/32 of one at cost 15 (the default): unpadded, the known account answered ~30x sooner.
    assert.ok(median(legacy) >= 0.5 * median(unknown), `legacy ${median(legacy).toFixed(1)} ms, unknown ${median(unknown).toFixed(1)} ms`)
  })
})

describe('login timing', () => {
  it('a wrong email costs about as much as a wrong password (no enumeration by timing)', async (ctx) => {
    const t = await createTestApp(ctx, { PASSWORD_HASH_COST: '13', AUTH_RATE_LIMIT_MAX: '10000' })
    const user = await registerUser(t.app)
    const time = (email: string) => failedLoginMs(t, email, 'definitely wrong')
    const known: number[] = []
    const unknown: number[] = []
    for (let i = 0; i < 9; i++) {
      known.push(await time(user.email))
      unknown.push(await time(`nobody-${i}@example.com`))
    }
    const ratio = median(unknown) / median(known)
    assert.ok(ratio > 0.5 && ratio < 2, `unknown/known median ratio ${ratio.toFixed(2)}`)
  })
})

describe('revocation across instances sharing Redis', () => {
  it('a logout through one instance stops the token on another at once', async (ctx) => {
    const { apps: [a, b] } = await createInstances(ctx, 2)
    const user = await registerUser(a.app)
    assert.equal((await b.app.inject({ method: 'GET', url: '/api/auth/me', headers: user.headers })).statusCode, 200, 'B has the session cached')
    // No wait: B reads the session scope's generation from Redis on every request.
    assert.equal((await a.app.inject({ method: 'POST', url: '/api/auth/logout', headers: user.headers })).statusCode, 204)
    const res = await b.app.inject({ method: 'GET', url: '/api/auth/me', headers: user.headers })
    assert.equal(res.statusCode, 401)
    assert.equal(res.json().code, 'SESSION_REVOKED')
  })
})

describe('access tokens on one keep-alive connection', () => {
  it('a token checked once on a connection is not checked again, and nothing else rides on that: other, forged and revoked tokens are refused', async (ctx) => {
    const t = await createTestApp(ctx, { JOBS_EMBEDDED: 'false' })
    // One socket for every call, so each call after the first meets the connection's memo.
    const connection = oneConnection(ctx, await t.app.listen({ port: 0, host: '127.0.0.1' }))
    const me = (authorization: string) => connection.send('GET', '/api/auth/me', { authorization })
    const alice = await registerUser(t.app, { email: 'alice.memo@example.com' })
    const bob = await registerUser(t.app, { email: 'bob.memo@example.com' })
    for (let i = 0; i < 3; i++) assert.equal((await me(alice.headers.authorization)).body.email, 'alice.memo@example.com')
    // Another token on the same connection is checked on its own and answers for its own user.
    assert.equal((await me(bob.headers.authorization)).body.email, 'bob.memo@example.com')
    // Alice's payload under a signature that is not the server's, then Bob's signature on Alice's payload.
    const [header, payload, signature] = alice.accessToken.split('.') as [string, string, string]
    const forged = `${header}.${payload}.${signature.slice(0, -2)}${signature.endsWith('AA') ? 'BB' : 'AA'}`
    assert.equal((await me(`Bearer ${alice.accessToken}`)).status, 200)
    assert.equal((await me(`Bearer ${forged}`)).body.code, 'INVALID_TOKEN')
    assert.equal((await me(`Bearer ${header}.${payload}.${bob.accessToken.split('.')[2]}`)).body.code, 'INVALID_TOKEN')
    assert.equal((await me(`Bearer ${b64url({ alg: 'none', typ: 'JWT' })}.${payload}.`)).body.code, 'INVALID_TOKEN')
    // A signed-out session stops at once on the connection that used its token.
    assert.equal((await me(alice.headers.authorization)).status, 200)
    assert.equal((await t.app.inject({ method: 'POST', url: '/api/auth/logout', headers: alice.headers })).statusCode, 204)
    assert.equal((await me(alice.headers.authorization)).body.code, 'SESSION_REVOKED')
    assert.equal(connection.sockets.size, 1, 'every call went over one connection')
  })
})
