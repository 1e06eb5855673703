import assert from 'node:assert/strict'
import { after, before, it } from 'node:test'
import { createTestApp, registerUser, type TestApp } from '../helpers/app.ts'
import { dropPrefix, REDIS_URL, testPrefix } from '../helpers/redis.ts'

type User = Awaited<ReturnType<typeof registerUser>>
interface Res { statusCode: number, body: string, json (): any }

const PASSPHRASE = 'isolation vault passphrase'

let t: TestApp
const prefix = testPrefix('isolation')
let alice: User
let bob: User
/** What Alice owns, by kind. */
const a = { held: '', issued: '', issuedSecret: '', heldSecret: 'sk_alice_held_secret_value', session: '', notification: '', hook: 'https://hooks.example.com/alice-only' }
let bobVerifyKey = ''

async function call (user: User | Record<string, string>, method: string, url: string, payload?: unknown): Promise<Res> {
  const headers = 'headers' in user ? (user as User).headers : user as Record<string, string>
  return t.app.inject({ method: method as 'GET', url, headers, ...(payload === undefined ? {} : { payload: payload as object }) })
}

/** A fresh session of Bob's, for calls that end sessions or change his credentials. */
async function bobSession () {
  const res = await t.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: bob.email, password: bob.password } })
  assert.equal(res.statusCode, 200)
  return { authorization: `Bearer ${res.json().accessToken}` }
}

/** Bob in the web console: POSTs with his CSRF secret cookie and token, keeping the cookies he is given. */
async function bobConsole () {
  const csrf = await t.app.inject({ method: 'GET', url: '/api/auth/console/csrf' })
  assert.equal(csrf.statusCode, 200)
  const cookies = new Map((csrf.cookies as Array<{ name: string, value: string }>).map((c) => [c.name, c.value]))
  return async (path: string, payload?: object): Promise<Res> => {
    const cookie = [...cookies].map(([name, value]) => `${name}=${value}`).join('; ')
    const res = await t.app.inject({ method: 'POST', url: `/api/auth/console/${path}`, headers: { cookie, 'x-csrf-token': csrf.json().csrfToken }, ...(payload === undefined ? {} : { payload }) })
    for (const c of res.cookies as Array<{ name: string, value: string }>) cookies.set(c.name, c.value)
    return res
  }
}

/** Everything Alice can see of her own data; it must be identical before and after Bob's attempts. */
async function aliceSnapshot () {
  const get = async (url: string) => {
    const res = await call(alice, 'GET', url)
    assert.equal(res.statusCode, 200, `${url}: ${res.body}`)
    return res.json()
  }
  const keys = await get('/api/keys?limit=100&sort=createdAt')
  return {
    me: await get('/api/auth/me'),
    keys,
    stats: { ...(await get('/api/keys/stats')), generatedAt: null },
    perKey: await Promise.all(keys.items.map(async (k: { id: string }) => [await get(`/api/keys/${k.id}`), await get(`/api/keys/${k.id}/versions`)])),
    usage: (await get(`/api/keys/${a.held}/usage?granularity=month`)).total,
    sessions: (await get('/api/auth/sessions')).items.map((s: { id: string, revokedAt: string | null }) => [s.id, s.revokedAt]),
    webhook: await get('/api/auth/me/webhook'),
    notifications: await get('/api/notifications'),
    vault: await get('/api/vault'),
    // Bob's failed login as Alice is recorded on her trail, as it should be; nothing else may be.
    audit: (await get('/api/audit?limit=100')).items.filter((e: { action: string }) => e.action !== 'auth.login_failed'),
    chain: (await get('/api/audit/verify')).valid
  }
}

/** Strings that identify Alice's data: none may appear in anything Bob is answered. */
function aliceMarkers () {
  return [alice.email, alice.user.id, a.held, a.issued, a.issuedSecret, a.heldSecret, a.session, a.notification, a.hook, 'alice-held-name', 'alice-issued-name', 'alice-tag']
}

function assertNoAliceData (res: Res, what: string) {
  for (const marker of aliceMarkers()) assert.equal(res.body.includes(marker), false, `${what} shows Alice's ${marker.slice(0, 16)}`)
}

function assertNotFound (res: Res, what: string) {
  assert.equal(res.statusCode, 404, `${what}: ${res.statusCode} ${res.body}`)
  assert.equal(res.json().code, 'NOT_FOUND', what)
  assertNoAliceData(res, what)
}

/** Bob reads a route that returns the caller's own data: 200, and nothing of Alice's. */
const ownRead = (url: string) => async () => {
  const res = await call(bob, 'GET', url)
  assert.equal(res.statusCode, 200, `${url}: ${res.body}`)
  assertNoAliceData(res, `GET ${url}`)
}

/**
 * One probe per operation of the OpenAPI document: what Bob (a signed-in user with data of his
 * own) tries against Alice's data through it. The test fails when an operation has no probe, so
 * a new route cannot ship without its isolation check.
 */
const probes: Record<string, () => Promise<void>> = {
  'GET /api/health': async () => { assertNoAliceData(await call({}, 'GET', '/api/health'), 'health') },
  'POST /api/auth/register': async () => {
    const res = await call({}, 'POST', '/api/auth/register', { email: alice.email, password: 'taking over alice' })
    assert.equal(res.statusCode, 409, 'an existing account cannot be registered again')
  },
  'POST /api/auth/login': async () => {
    const res = await call({}, 'POST', '/api/auth/login', { email: alice.email, password: bob.password })
    assert.equal(res.statusCode, 401, 'another user\'s password does not open the account')
  },
  'POST /api/auth/refresh': async () => {
    const res = await call({}, 'POST', '/api/auth/refresh', { refreshToken: bob.refreshToken })
    assert.equal(res.statusCode, 200)
    assert.equal(res.json().user.id, bob.user.id, 'a refresh token yields its own user only')
    bob.refreshToken = res.json().refreshToken
  },
  'POST /api/auth/logout': async () => { assert.equal((await call(await bobSession(), 'POST', '/api/auth/logout')).statusCode, 204) },
  'POST /api/auth/logout-all': async () => {
    const res = await call(await bobSession(), 'POST', '/api/auth/logout-all')
    assert.equal(res.statusCode, 200)
    bob.headers = await bobSession()
  },
  'GET /api/auth/console/csrf': async () => { assertNoAliceData(await call({}, 'GET', '/api/auth/console/csrf'), 'console csrf') },
  'POST /api/auth/console/register': async () => {
    const res = await (await bobConsole())('register', { email: alice.email, password: 'taking over alice' })
    assert.equal(res.statusCode, 409, 'an existing account cannot be registered again from the console either')
  },
  'POST /api/auth/console/login': async () => {
    const res = await (await bobConsole())('login', { email: bob.email, password: bob.password })
    assert.equal(res.json().user.id, bob.user.id)
    assertNoAliceData(res, 'console login')
  },
  'POST /api/auth/console/refresh': async () => {
    const send = await bobConsole()
    assert.equal((await send('login', { email: bob.email, password: bob.password })).statusCode, 200)
    const res = await send('refresh')
    assert.equal(res.statusCode, 200)
    assert.equal(res.json().user.id, bob.user.id, 'the refresh cookie yields its own user only')
  },
  'POST /api/auth/console/logout': async () => {
    const send = await bobConsole()
    assert.equal((await send('login', { email: bob.email, password: bob.password })).statusCode, 200)
    // Everywhere means every session of Bob's account, none of Alice's (her snapshot compares them).
    assert.equal((await send('logout', { everywhere: true })).statusCode, 204)
    bob.headers = await bobSession()
  },
  'GET /api/auth/me': async () => {
    const res = await call(bob, 'GET', '/api/auth/me')
    assert.equal(res.json().id, bob.user.id)
    assertNoAliceData(res, 'GET /api/auth/me')
  },
  'PATCH /api/auth/me': async () => { assert.equal((await call(bob, 'PATCH', '/api/auth/me', { name: 'Bob renamed' })).statusCode, 200) },
  'DELETE /api/auth/me': async () => {
    const carol = await registerUser(t.app)
    assert.equal((await call(carol, 'DELETE', '/api/auth/me', { password: carol.password })).statusCode, 204)
    assert.equal((await call(carol, 'DELETE', '/api/auth/me', { password: alice.password })).statusCode, 401, 'the deleted account\'s token is dead')
  },
  'GET /api/auth/me/export': ownRead('/api/auth/me/export'),
  'POST /api/auth/change-password': async () => {
    const res = await call(await bobSession(), 'POST', '/api/auth/change-password', { currentPassword: bob.password, newPassword: 'bob changed password' })
    assert.equal(res.statusCode, 204)
    bob.password = 'bob changed password'
    bob.headers = await bobSession()
  },
  'GET /api/auth/sessions': ownRead('/api/auth/sessions'),
  'DELETE /api/auth/sessions/{id}': async () => { assertNotFound(await call(bob, 'DELETE', `/api/auth/sessions/${a.session}`), 'end Alice\'s session') },
  'GET /api/auth/me/webhook': ownRead('/api/auth/me/webhook'),
  'PUT /api/auth/me/webhook': async () => { assert.equal((await call(bob, 'PUT', '/api/auth/me/webhook', { url: 'https://hooks.example.com/bob' })).statusCode, 200) },
  'DELETE /api/auth/me/webhook': async () => { assert.equal((await call(bob, 'DELETE', '/api/auth/me/webhook')).statusCode, 204) },
  'GET /api/notifications': ownRead('/api/notifications'),
  'POST /api/notifications/{id}/read': async () => { assertNotFound(await call(bob, 'POST', `/api/notifications/${a.notification}/read`), 'mark Alice\'s notification read') },
  'POST /api/keys/verify': async () => {
    for (const [caller, headers] of [['Bob\'s token', bob.headers], ['Bob\'s verify key', { authorization: `Bearer ${bobVerifyKey}` }]] as const) {
      const res = await call(headers, 'POST', '/api/keys/verify', { key: a.issuedSecret })
      assert.equal(res.statusCode, 200)
      assert.deepEqual(res.json(), { valid: false, code: 'NOT_FOUND' }, `${caller} verifying Alice's key`)
    }
  },
  'POST /api/keys': async () => {
    const res = await call(bob, 'POST', '/api/keys', { kind: 'issued', name: 'bob key', ownerId: alice.user.id })
    assert.equal(res.statusCode, 400, 'the owner cannot be chosen')
    assert.equal((await call(bob, 'POST', '/api/keys', { kind: 'issued', name: 'bob key' })).statusCode, 201)
  },
  'GET /api/keys': async () => {
    await ownRead('/api/keys?limit=100')()
    await ownRead('/api/keys?q=alice')()
    await ownRead('/api/keys?tag=alice-tag')()
  },
  'GET /api/keys/stats': ownRead('/api/keys/stats'),
  'POST /api/keys/bulk': async () => {
    for (const action of ['revoke', 'disable', 'enable', 'addTags', 'removeTags']) {
      const res = await call(bob, 'POST', '/api/keys/bulk', { action, ids: [a.held, a.issued], ...(action.endsWith('Tags') ? { tags: ['alice-tag'] } : {}) })
      assert.equal(res.statusCode, 200)
      assert.deepEqual(res.json().results, [{ id: a.held, ok: false, error: 'NOT_FOUND' }, { id: a.issued, ok: false, error: 'NOT_FOUND' }], action)
    }
  },
  'GET /api/keys/{id}': async () => { for (const id of [a.held, a.issued]) assertNotFound(await call(bob, 'GET', `/api/keys/${id}`), 'read') },
  'PATCH /api/keys/{id}': async () => { for (const id of [a.held, a.issued]) assertNotFound(await call(bob, 'PATCH', `/api/keys/${id}`, { name: 'stolen', status: 'disabled' }), 'patch') },
  'DELETE /api/keys/{id}': async () => { for (const id of [a.held, a.issued]) assertNotFound(await call(bob, 'DELETE', `/api/keys/${id}`), 'revoke') },
  'POST /api/keys/{id}/reveal': async () => {
    // Even with Alice's passphrase, Bob cannot reach her key.
    for (const id of [a.held, a.issued]) assertNotFound(await call(bob, 'POST', `/api/keys/${id}/reveal`, { passphrase: PASSPHRASE }), 'reveal')
  },
  'POST /api/keys/{id}/rotate': async () => {
    assertNotFound(await call(bob, 'POST', `/api/keys/${a.held}/rotate`, { secret: 'sk_planted_by_bob', passphrase: PASSPHRASE }), 'rotate held')
    assertNotFound(await call(bob, 'POST', `/api/keys/${a.issued}/rotate`, { gracePeriodSeconds: 0 }), 'rotate issued')
  },
  'GET /api/keys/{id}/versions': async () => { assertNotFound(await call(bob, 'GET', `/api/keys/${a.held}/versions`), 'versions') },
  'GET /api/keys/{id}/usage': async () => { assertNotFound(await call(bob, 'GET', `/api/keys/${a.held}/usage`), 'usage series') },
  'POST /api/keys/{id}/usage': async () => { assertNotFound(await call(bob, 'POST', `/api/keys/${a.held}/usage`, { count: 1000 }), 'record usage') },
  'GET /api/usage/summary': ownRead('/api/usage/summary'),
  'GET /api/vault': ownRead('/api/vault'),
  'PUT /api/vault/passphrase': async () => {
    const res = await call(bob, 'PUT', '/api/vault/passphrase', { currentPassphrase: PASSPHRASE, passphrase: 'bob new vault passphrase' })
    assert.equal(res.statusCode, 200, 'Bob changes his own vault only')
  },
  'GET /api/audit': async () => {
    await ownRead('/api/audit?limit=100')()
    await ownRead(`/api/audit?keyId=${a.held}`)()
  },
  'GET /api/audit/verify': ownRead('/api/audit/verify'),
  'GET /api/system/info': async () => { assert.equal((await call(bob, 'GET', '/api/system/info')).statusCode, 403) },
  'GET /api/system/jobs': async () => { assert.equal((await call(bob, 'GET', '/api/system/jobs')).statusCode, 403) },
  'GET /api/system/stats': async () => { assert.equal((await call(bob, 'GET', '/api/system/stats')).statusCode, 403) },
  'GET /api/system/stats/history': async () => { assert.equal((await call(bob, 'GET', '/api/system/stats/history')).statusCode, 403) },
  'GET /api/system/rate-limits': async () => { assert.equal((await call(bob, 'GET', '/api/system/rate-limits')).statusCode, 403) }
}

before(async () => {
  t = await createTestApp({ REDIS_URL, REDIS_PREFIX: prefix, JOBS_EMBEDDED: 'false', KEY_CREATE_RATE_LIMIT_MAX: '1000', HEAVY_RATE_LIMIT_MAX: '1000' })
  alice = await registerUser(t.app, { email: 'alice.isolation@example.com', password: 'alice own password' })
  bob = await registerUser(t.app, { password: 'bob own password' })
  for (const user of [alice, bob]) assert.equal((await call(user, 'PUT', '/api/vault/passphrase', { passphrase: PASSPHRASE })).statusCode, 200)

  const held = await call(alice, 'POST', '/api/keys', { kind: 'held', name: 'alice-held-name', secret: a.heldSecret, passphrase: PASSPHRASE, tags: ['alice-tag'], monthlyLimit: 100 })
  const issued = await call(alice, 'POST', '/api/keys', { kind: 'issued', name: 'alice-issued-name', recoverable: true, passphrase: PASSPHRASE, tags: ['alice-tag'] })
  a.held = held.json().key.id
  a.issued = issued.json().key.id
  a.issuedSecret = issued.json().secret
  assert.equal((await call(alice, 'POST', `/api/keys/${a.held}/usage`, { count: 5 })).statusCode, 201)
  assert.equal((await call(alice, 'PUT', '/api/auth/me/webhook', { url: a.hook })).statusCode, 200)
  const second = await t.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: alice.email, password: alice.password } })
  a.session = JSON.parse(Buffer.from(second.json().accessToken.split('.')[1], 'base64url').toString()).sid
  a.notification = (await t.app.notifier.notify(alice.user.id, { type: 'expired', keyId: a.held, title: 'alice-held-name expired', detail: {}, dedupeKey: 'alice' }))!.id

  const verifyKey = await call(bob, 'POST', '/api/keys', { kind: 'issued', name: 'bob verifier', scopes: ['keyward:verify'] })
  bobVerifyKey = verifyKey.json().secret
  // Bob has data of his own on every route, so "nothing of Alice's" is not trivially true.
  assert.equal((await call(bob, 'POST', '/api/keys', { kind: 'held', name: 'bob held', secret: 'sk_bob_held', passphrase: PASSPHRASE, tags: ['bob-tag'] })).statusCode, 201)
  await t.app.notifier.notify(bob.user.id, { type: 'expired', keyId: null, title: 'bob notice', detail: {}, dedupeKey: 'bob' })
})
after(async () => {
  await t.close()
  await dropPrefix(prefix)
})

it('every operation of the OpenAPI document keeps one user out of another\'s data', async () => {
  const doc = t.app.swagger() as { paths: Record<string, Record<string, unknown>> }
  const operations = Object.entries(doc.paths).flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`))
  assert.deepEqual(operations.filter((op) => probes[op] === undefined), [], 'operations without an isolation probe')
  assert.deepEqual(Object.keys(probes).filter((op) => !operations.includes(op)), [], 'probes of operations that no longer exist')

  // Controls: Alice reaches everything Bob is refused, so a 404 below means "not yours", not "no such thing".
  for (const url of [`/api/keys/${a.held}`, `/api/keys/${a.issued}`, `/api/keys/${a.held}/versions`, `/api/keys/${a.held}/usage`]) {
    assert.equal((await call(alice, 'GET', url)).statusCode, 200, url)
  }
  // (Alice's own verification comes after the comparison: it charges usage, flushed in the background.)
  assert.ok((await call(alice, 'GET', '/api/auth/sessions')).body.includes(a.session))
  assert.ok((await call(alice, 'GET', '/api/notifications')).body.includes(a.notification))

  const before = await aliceSnapshot()
  for (const op of operations) {
    await probes[op]!()
  }
  assert.deepEqual(await aliceSnapshot(), before, 'Alice\'s data is exactly as it was')
  assert.deepEqual((await call(alice, 'GET', '/api/audit?action=auth.login_failed')).json().items.length, 1, 'the failed login as Alice is on her trail')
  assert.equal((await call(alice, 'POST', `/api/keys/${a.held}/reveal`, { passphrase: PASSPHRASE })).json().secret, a.heldSecret)
  assert.equal((await call(alice, 'POST', '/api/keys/verify', { key: a.issuedSecret })).json().code, 'VALID', 'the key Bob was refused is valid')
  const login = await t.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: alice.email, password: alice.password } })
  assert.equal(login.statusCode, 200, 'Alice\'s password is unchanged')
  console.log(`isolation: ${operations.length} operations probed, Alice's data unchanged`)
})
