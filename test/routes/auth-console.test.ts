import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { LightMyRequestResponse } from 'fastify'
import { createTestApp, registerUser, type TestApp } from '../helpers/app.ts'

const BASE = '/api/auth/console'
const REFRESH = 'keyward_refresh'
const CSRF = 'keyward_csrf'
const THIRTY_DAYS = 30 * 86_400

interface Cookie { name: string, value: string, path?: string, httpOnly?: boolean, secure?: boolean, sameSite?: string, maxAge?: number, expires?: Date }

/** The Set-Cookie of a response for one name, or undefined. */
function setCookie (res: LightMyRequestResponse, name: string): Cookie | undefined {
  return (res.cookies as Cookie[]).find((c) => c.name === name)
}

/** True when the Set-Cookie tells the browser to drop the cookie. */
function clears (cookie: Cookie | undefined) {
  return cookie !== undefined && cookie.value === '' && (cookie.maxAge === 0 || (cookie.expires !== undefined && cookie.expires.getTime() <= Date.now()))
}

/** A browser's cookie jar for one origin, as far as these routes go (they share one path). */
class Browser {
  readonly jar = new Map<string, string>()
  csrfToken = ''
  constructor (private readonly t: () => TestApp, private readonly extraHeaders: Record<string, string> = {}) {}

  absorb (res: LightMyRequestResponse) {
    for (const c of res.cookies as Cookie[]) {
      if (clears(c)) this.jar.delete(c.name)
      else this.jar.set(c.name, c.value)
    }
    return res
  }

  headers (csrf = true): Record<string, string> {
    const cookie = [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ')
    return { ...this.extraHeaders, ...(cookie ? { cookie } : {}), ...(csrf && this.csrfToken ? { 'x-csrf-token': this.csrfToken } : {}) }
  }

  async csrf () {
    const res = this.absorb(await this.t().app.inject({ method: 'GET', url: `${BASE}/csrf`, headers: this.headers(false) }))
    assert.equal(res.statusCode, 200)
    this.csrfToken = res.json().csrfToken
    return res
  }

  async post (path: string, payload?: object, headers: Record<string, string> = this.headers()) {
    return this.absorb(await this.t().app.inject({ method: 'POST', url: `${BASE}${path}`, headers, ...(payload === undefined ? {} : { payload }) }))
  }
}

/** Each route's hook lines ('POST /api/keys/verify' -> its '• (onRequest) [...]' lines), from printRoutes' tree. */
function routeHooks (tree: string): Map<string, string> {
  const hooks = new Map<string, string>()
  const parents: Array<{ column: number, path: string }> = []
  let current: string[] = []
  for (const line of tree.split('\n')) {
    const match = /^([│├└─\s]*)(\S.*)$/.exec(line)
    if (match === null) continue
    const [, indent = '', text = ''] = match
    if (text.startsWith('•')) {
      for (const key of current) hooks.set(key, `${hooks.get(key) ?? ''}${text}\n`)
      continue
    }
    const route = /^(.*) \(([A-Z, ]+)\)$/.exec(text)
    if (route === null) continue
    while (parents.length > 0 && (parents.at(-1) as { column: number }).column >= indent.length) parents.pop()
    const path = `${parents.at(-1)?.path ?? ''}${route[1]}`
    parents.push({ column: indent.length, path })
    current = (route[2] as string).split(', ').map((method) => `${method} ${path}`)
  }
  return hooks
}

describe('console session routes', () => {
  let t: TestApp
  before(async () => { t = await createTestApp({ AUTH_RATE_LIMIT_MAX: '10000' }) })
  after(async () => { await t.close() })

  const app = () => t
  const get = (url: string, headers: Record<string, string>) => t.app.inject({ method: 'GET', url, headers })
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
  const sessionCount = async (headers: Record<string, string>) => (await get('/api/auth/sessions', headers)).json().items.length as number

  async function signedIn () {
    const user = await registerUser(t.app)
    const browser = new Browser(app)
    await browser.csrf()
    const res = await browser.post('/login', { email: user.email, password: user.password })
    assert.equal(res.statusCode, 200, res.body)
    return { user, browser, login: res }
  }

  it('hands out a CSRF token with an HttpOnly, SameSite=Strict secret cookie scoped to the console path', async () => {
    const browser = new Browser(app)
    const res = await browser.csrf()
    assert.equal(typeof res.json().csrfToken, 'string')
    assert.ok(res.json().csrfToken.length > 20)
    assert.equal(res.headers['cache-control'], 'no-store')
    assert.equal(res.headers['access-control-allow-origin'], undefined)
    const secret = setCookie(res, CSRF)
    assert.ok(secret)
    assert.equal(secret.path, BASE)
    assert.equal(secret.httpOnly, true)
    assert.equal(secret.sameSite, 'Strict')
    assert.notEqual(secret.secure, true)
    // The secret is kept: a second token comes without a new cookie and works too.
    const again = await browser.csrf()
    assert.equal(setCookie(again, CSRF), undefined)
  })

  it('signs in with the refresh token in a cookie only, and the access token works', async () => {
    const { user, login } = await signedIn()
    const body = login.json()
    assert.deepEqual(Object.keys(body).sort(), ['accessToken', 'expiresIn', 'tokenType', 'user'])
    assert.equal(body.user.id, user.user.id)
    assert.doesNotMatch(login.body, /rt_/)
    assert.equal(login.headers['cache-control'], 'no-store')
    const cookie = setCookie(login, REFRESH)
    assert.ok(cookie)
    assert.match(cookie.value, /^rt_[A-Za-z0-9_-]{43}$/)
    assert.equal(cookie.path, BASE)
    assert.equal(cookie.httpOnly, true)
    assert.equal(cookie.sameSite, 'Strict')
    assert.notEqual(cookie.secure, true)
    assert.ok(cookie.maxAge !== undefined && cookie.maxAge > THIRTY_DAYS - 60 && cookie.maxAge <= THIRTY_DAYS, `Max-Age ${cookie.maxAge}`)
    assert.equal((await get('/api/auth/me', bearer(body.accessToken))).statusCode, 200)
    assert.doesNotMatch(t.logs.text(), new RegExp(cookie.value))
  })

  it('registers an account and signs it in', async () => {
    const browser = new Browser(app)
    await browser.csrf()
    const email = `console-${Math.random().toString(36).slice(2)}@example.com`
    const res = await browser.post('/register', { email, password: 'a long console password', name: 'Ada' })
    assert.equal(res.statusCode, 201, res.body)
    assert.deepEqual(Object.keys(res.json()).sort(), ['accessToken', 'expiresIn', 'tokenType', 'user'])
    assert.equal(res.json().user.name, 'Ada')
    assert.ok(browser.jar.has(REFRESH))
    const taken = await browser.post('/register', { email, password: 'a long console password' })
    assert.equal(taken.statusCode, 409)
    assert.equal(taken.json().code, 'EMAIL_TAKEN')
  })

  it('refuses wrong credentials with the JSON API\'s 401 INVALID_CREDENTIALS and sets no cookie', async () => {
    const user = await registerUser(t.app)
    const browser = new Browser(app)
    await browser.csrf()
    const res = await browser.post('/login', { email: user.email, password: 'not the password' })
    assert.equal(res.statusCode, 401)
    const { requestId, ...rest } = res.json()
    assert.ok(requestId)
    assert.deepEqual(rest, { statusCode: 401, code: 'INVALID_CREDENTIALS', error: 'Unauthorized', message: 'Email or password is wrong' })
    assert.equal(setCookie(res, REFRESH), undefined)
  })

  it('rotates the cookie on refresh; the old value is then reuse: 401, session revoked, cookie cleared', async () => {
    const { browser } = await signedIn()
    const first = browser.jar.get(REFRESH) as string
    const refreshed = await browser.post('/refresh')
    assert.equal(refreshed.statusCode, 200, refreshed.body)
    assert.deepEqual(Object.keys(refreshed.json()).sort(), ['accessToken', 'expiresIn', 'tokenType', 'user'])
    const second = browser.jar.get(REFRESH) as string
    assert.notEqual(second, first)
    const access = refreshed.json().accessToken
    assert.equal((await get('/api/auth/me', bearer(access))).statusCode, 200)
    // `{}` is accepted like no body at all.
    const third = await browser.post('/refresh', {})
    assert.equal(third.statusCode, 200)

    browser.jar.set(REFRESH, first)
    const reused = await browser.post('/refresh')
    assert.equal(reused.statusCode, 401)
    assert.equal(reused.json().code, 'REFRESH_TOKEN_REUSED')
    assert.ok(clears(setCookie(reused, REFRESH)), 'the cookie is cleared')
    assert.equal(browser.jar.has(REFRESH), false)
    assert.equal((await get('/api/auth/me', bearer(access))).json().code, 'SESSION_REVOKED')
  })

  it('answers a refresh without a cookie 401 NOT_SIGNED_IN and an unknown one 401 INVALID_REFRESH_TOKEN, clearing it', async () => {
    const browser = new Browser(app)
    await browser.csrf()
    const none = await browser.post('/refresh')
    assert.equal(none.statusCode, 401)
    assert.equal(none.json().code, 'NOT_SIGNED_IN')
    assert.ok(clears(setCookie(none, REFRESH)))
    assert.equal(none.headers['cache-control'], 'no-store')
    browser.jar.set(REFRESH, 'rt_not-a-token-this-server-issued')
    const unknown = await browser.post('/refresh')
    assert.equal(unknown.statusCode, 401)
    assert.equal(unknown.json().code, 'INVALID_REFRESH_TOKEN')
    assert.ok(clears(setCookie(unknown, REFRESH)))
  })

  it('logs out: ends that session only, clears the cookie, and is idempotent', async () => {
    const { user, browser, login } = await signedIn()
    const access = login.json().accessToken
    const res = await browser.post('/logout')
    assert.equal(res.statusCode, 204)
    assert.ok(clears(setCookie(res, REFRESH)))
    assert.equal((await get('/api/auth/me', bearer(access))).json().code, 'SESSION_REVOKED')
    // The JSON session registerUser opened is still alive.
    assert.equal((await get('/api/auth/me', user.headers)).statusCode, 200)
    const again = await browser.post('/logout')
    assert.equal(again.statusCode, 204)
    assert.ok(clears(setCookie(again, REFRESH)))
  })

  it('logs out everywhere: every session of the account ends', async () => {
    const { user, browser } = await signedIn()
    const res = await browser.post('/logout', { everywhere: true })
    assert.equal(res.statusCode, 204)
    assert.equal((await get('/api/auth/me', user.headers)).json().code, 'SESSION_REVOKED')
    const other = await t.app.inject({ method: 'POST', url: '/api/auth/refresh', payload: { refreshToken: user.refreshToken } })
    assert.equal(other.statusCode, 401)
  })

  it('logs out the bearer token\'s session when there is no cookie', async () => {
    const { browser, login } = await signedIn()
    const access = login.json().accessToken
    browser.jar.delete(REFRESH)
    const res = await browser.post('/logout', {}, { ...browser.headers(), ...bearer(access) })
    assert.equal(res.statusCode, 204)
    assert.equal((await get('/api/auth/me', bearer(access))).json().code, 'SESSION_REVOKED')
  })

  describe('CSRF', () => {
    it('refuses a missing or wrong token with 403 CSRF_INVALID and creates no session', async () => {
      const user = await registerUser(t.app)
      const browser = new Browser(app)
      await browser.csrf()
      const payload = { email: user.email, password: user.password }
      const missing = await browser.post('/login', payload, browser.headers(false))
      const wrong = await browser.post('/login', payload, { ...browser.headers(false), 'x-csrf-token': 'forged-token' })
      // A token is worthless without the secret cookie it was made for.
      const noCookie = await browser.post('/login', payload, { 'x-csrf-token': browser.csrfToken })
      const otherBrowser = new Browser(app)
      await otherBrowser.csrf()
      const mixed = await browser.post('/login', payload, { ...browser.headers(false), 'x-csrf-token': otherBrowser.csrfToken })
      for (const res of [missing, wrong, noCookie, mixed]) {
        assert.equal(res.statusCode, 403)
        const { requestId, ...rest } = res.json()
        assert.ok(requestId)
        assert.deepEqual(Object.keys(rest).sort(), ['code', 'error', 'message', 'statusCode'])
        assert.equal(rest.code, 'CSRF_INVALID')
        assert.equal(setCookie(res, REFRESH), undefined)
      }
      assert.equal(await sessionCount(user.headers), 1)
    })

    it('refuses register, refresh and logout without the token and changes nothing', async () => {
      const { user, browser, login } = await signedIn()
      const email = `csrf-${Math.random().toString(36).slice(2)}@example.com`
      const register = await browser.post('/register', { email, password: 'a long console password' }, browser.headers(false))
      assert.equal(register.statusCode, 403)
      assert.equal(await t.app.store.findUserByEmail(email), null)

      const cookie = browser.jar.get(REFRESH)
      const refresh = await browser.post('/refresh', undefined, browser.headers(false))
      const logout = await browser.post('/logout', { everywhere: true }, browser.headers(false))
      for (const res of [refresh, logout]) {
        assert.equal(res.statusCode, 403)
        assert.equal(res.json().code, 'CSRF_INVALID')
        assert.equal(setCookie(res, REFRESH), undefined)
      }
      assert.equal((await get('/api/auth/me', bearer(login.json().accessToken))).statusCode, 200)
      assert.equal(await sessionCount(user.headers), 2)
      // The cookie was not rotated: it still refreshes once.
      assert.equal(browser.jar.get(REFRESH), cookie)
      assert.equal((await browser.post('/refresh')).statusCode, 200)
    })
  })

  it('refuses bad bodies with 400 VALIDATION_FAILED', async () => {
    const browser = new Browser(app)
    await browser.csrf()
    const cases: Array<[string, object]> = [
      ['/login', { email: 'a@example.com', password: 'long enough password', extra: true }],
      ['/login', { email: 'a@example.com' }],
      ['/register', { email: 'b@example.com', password: 'short' }],
      ['/refresh', { refreshToken: 'rt_x' }],
      ['/logout', { everywhere: 'yes' }]
    ]
    for (const [path, payload] of cases) {
      const res = await browser.post(path, payload)
      assert.equal(res.statusCode, 400, `${path} ${res.body}`)
      assert.equal(res.json().code, 'VALIDATION_FAILED')
    }
    assert.equal(await t.app.store.findUserByEmail('b@example.com'), null)
  })

  it('leaves the JSON API as it was: refresh token in the body, no cookie', async () => {
    const user = await registerUser(t.app)
    const res = await t.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: user.email, password: user.password } })
    assert.equal(res.statusCode, 200)
    assert.match(res.json().refreshToken, /^rt_/)
    assert.equal(res.headers['set-cookie'], undefined)
  })

  it('parses cookies on the console routes only: the verify route has no cookie or CSRF hook', () => {
    assert.equal(t.app.hasRequestDecorator('cookies'), false)
    const hooks = routeHooks(t.app.printRoutes({ includeHooks: true, commonPrefix: false }))
    const verify = hooks.get('POST /api/keys/verify')
    assert.match(verify ?? '', /onRequest/)
    assert.doesNotMatch(verify ?? '', /cookie|csrf/i)
    for (const route of ['POST /api/auth/login', 'POST /api/auth/refresh', 'GET /api/health']) {
      assert.doesNotMatch(hooks.get(route) ?? 'missing', /cookie|csrf|missing/i, route)
    }
    for (const route of ['register', 'login', 'refresh', 'logout']) {
      assert.match(hooks.get(`POST ${BASE}/${route}`) ?? '', /\(onRequest\)[^\n]*fastifyCookieHandler[\s\S]*\(preValidation\)[^\n]*csrfProtection/, route)
    }
    assert.match(hooks.get(`GET ${BASE}/csrf`) ?? '', /fastifyCookieHandler/)
  })
})

describe('console cookies behind a proxy', () => {
  async function cookiesOver (t: TestApp, headers: Record<string, string>) {
    const browser = new Browser(() => t, headers)
    const csrf = await browser.csrf()
    const user = await registerUser(t.app)
    const login = await browser.post('/login', { email: user.email, password: user.password })
    assert.equal(login.statusCode, 200)
    return { csrf: setCookie(csrf, CSRF), refresh: setCookie(login, REFRESH) }
  }

  it('marks both cookies Secure when the request came over HTTPS through a trusted proxy', async (ctx) => {
    const t = await createTestApp(ctx, { TRUST_PROXY: 'true' })
    const { csrf, refresh } = await cookiesOver(t, { 'x-forwarded-proto': 'https' })
    assert.equal(csrf?.secure, true)
    assert.equal(refresh?.secure, true)
    assert.equal(refresh?.sameSite, 'Strict')
  })

  it('ignores x-forwarded-proto by default (TRUST_PROXY=false): no Secure over plain HTTP', async (ctx) => {
    const t = await createTestApp(ctx)
    const { csrf, refresh } = await cookiesOver(t, { 'x-forwarded-proto': 'https' })
    assert.notEqual(csrf?.secure, true)
    assert.notEqual(refresh?.secure, true)
  })
})

describe('console refresh at the default limits', () => {
  it('a page reloaded more often than the auth tier allows stays signed in: refresh counts in the general tier', async (ctx) => {
    // The test apps raise the auth tier; this one runs production's default of 10 per window.
    const t = await createTestApp(ctx, { AUTH_RATE_LIMIT_MAX: '10' })
    const browser = new Browser(() => t)
    await browser.csrf()
    const user = await registerUser(t.app)
    assert.equal((await browser.post('/login', { email: user.email, password: user.password })).statusCode, 200)
    // The auth tier's default is 10 per window and the registration and sign-in above took two.
    for (let reload = 0; reload < 15; reload++) {
      await browser.csrf()
      const res = await browser.post('/refresh')
      assert.equal(res.statusCode, 200, `reload ${reload + 1}: ${res.body}`)
    }
  })
})
