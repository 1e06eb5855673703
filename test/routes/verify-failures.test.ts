import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { DEFAULT_PREFIX, generateKey } from '../../plugins/app/keys/format.ts'
import { createInstances, createTestApp, registerUser, type Instances, type TestApp } from '../helpers/app.ts'
import { redisClient } from '../helpers/redis.ts'
import { onScopeEnd, suiteScope } from '../helpers/scope.ts'

type User = Awaited<ReturnType<typeof registerUser>>
const ERROR_KEYS = ['code', 'error', 'message', 'requestId', 'statusCode']

async function issue (t: TestApp, user: User, body: Record<string, unknown> = {}) {
  const res = await t.app.inject({ method: 'POST', url: '/api/keys', headers: user.headers, payload: { kind: 'issued', name: 'k', ...body } })
  assert.equal(res.statusCode, 201, res.body)
  return res.json() as { key: { id: string }, secret: string }
}

/** A backend's verify credential (an issued key with keyward:verify) and a key its end users present. */
async function backend (t: TestApp) {
  const user = await registerUser(t.app)
  const root = await issue(t, user, { scopes: ['keyward:verify'] })
  const good = await issue(t, user)
  const headers = { authorization: `Bearer ${root.secret}` }
  const verify = (payload: Record<string, unknown>, remoteAddress = '203.0.113.50') =>
    t.app.inject({ method: 'POST', url: '/api/keys/verify', headers, payload, remoteAddress })
  return { user, root, good, headers, verify }
}

/** A key with a valid shape and a wrong checksum: MALFORMED, answered without a lookup. */
function malformed () {
  const secret = generateKey(DEFAULT_PREFIX).secret
  return secret.slice(0, -1) + (secret.endsWith('0') ? '1' : '0')
}

/**
 * A backend relays 1,000 bad keys from its end users (half malformed, half unknown), with a good
 * key between every ten: every good one answers VALID; the bad ones beyond the tier's limit (100
 * a minute by default) answer 429.
 */
async function relay (t: TestApp) {
  const b = await backend(t)
  const answered: Record<string, number> = { MALFORMED: 0, NOT_FOUND: 0, RATE_LIMITED: 0 }
  let good = 0
  for (let i = 0; i < 1000; i++) {
    const res = await b.verify({ key: i % 2 === 0 ? malformed() : generateKey(DEFAULT_PREFIX).secret })
    if (res.statusCode === 429) {
      assert.deepEqual(Object.keys(res.json()).sort(), ERROR_KEYS)
      assert.ok(Number(res.headers['retry-after']) > 0)
    } else {
      assert.equal(res.statusCode, 200, res.body)
    }
    answered[res.json().code]!++
    if (i % 10 === 9) {
      const ok = await b.verify({ key: b.good.secret })
      assert.equal(ok.statusCode, 200, `good key after ${i + 1} bad ones: ${ok.body}`)
      assert.equal(ok.json().code, 'VALID')
      good++
    }
  }
  assert.equal(good, 100)
  assert.equal(answered.MALFORMED! + answered.NOT_FOUND!, 100, 'the tier\'s limit of failures is answered')
  assert.equal(answered.RATE_LIMITED, 900, 'the guesses past it are refused')
  return b
}

describe('the verify-failure tier costs the guesser, not the backend', () => {
  let t: TestApp
  before(async () => { t = await createTestApp() })
  after(async () => { await t.close() })

  it('a backend relaying 1,000 bad keys keeps verifying good ones (default limit, memory)', async () => {
    const b = await relay(t)
    const other = await backend(t)
    assert.equal((await other.verify({ key: malformed() }, '203.0.113.50')).json().code, 'MALFORMED',
      'another caller from the same address has its own count')
    const session = await b.verify({ key: b.good.secret })
    assert.equal(session.json().code, 'VALID')
    const viaToken = await t.app.inject({ method: 'POST', url: '/api/keys/verify', headers: b.user.headers, payload: { key: 'kw_bad' } })
    assert.equal(viaToken.json().code, 'MALFORMED', 'the owner\'s access token is another credential, with its own count')
  })
})

describe('failures per end user, the limit exactly, and refused credentials', () => {
  let t: TestApp
  before(async () => { t = await createTestApp({ VERIFY_FAILURE_LIMIT_MAX: '3' }) })
  after(async () => { await t.close() })

  it('with VERIFY_FAILURE_LIMIT_MAX=3 the fourth failure is refused', async () => {
    const b = await backend(t)
    const codes = []
    for (let i = 0; i < 4; i++) codes.push((await b.verify({ key: malformed() })).json().code)
    assert.deepEqual(codes, ['MALFORMED', 'MALFORMED', 'MALFORMED', 'RATE_LIMITED'])
    const refused = await b.verify({ key: generateKey(DEFAULT_PREFIX).secret })
    assert.equal(refused.statusCode, 429)
    assert.equal(refused.headers['ratelimit-limit'], '3')
    assert.equal((await b.verify({ key: b.good.secret })).json().code, 'VALID')
  })

  it('with `client`, one end user\'s failures never limit another end user\'s', async () => {
    const b = await backend(t)
    const fail = (client: string) => b.verify({ key: malformed(), client }).then((r) => r.json().code)
    assert.deepEqual([await fail('user-a'), await fail('user-a'), await fail('user-a'), await fail('user-a')],
      ['MALFORMED', 'MALFORMED', 'MALFORMED', 'RATE_LIMITED'])
    assert.deepEqual([await fail('user-b'), await fail('user-b'), await fail('user-b')], ['MALFORMED', 'MALFORMED', 'MALFORMED'],
      'user-b has its own count')
    assert.equal((await b.verify({ key: b.good.secret, client: 'user-a' })).json().code, 'VALID', 'a blocked end user\'s good key verifies')
    assert.equal(await fail('user-a'), 'RATE_LIMITED')
    assert.equal(await fail('2001:db8:7:7::1'), 'MALFORMED', 'an end user given by address')
    assert.deepEqual([await fail('2001:db8:7:7::2'), await fail('2001:db8:7:7:ffff::3'), await fail('2001:db8:7:7::4')],
      ['MALFORMED', 'MALFORMED', 'RATE_LIMITED'], 'counts by its /64')
    assert.equal(await fail('2001:db8:7:8::1'), 'MALFORMED')
    const blocked = (await t.app.limiter.blockedClients()).filter((x) => x.tier === 'verifyFailures').map((x) => x.client).sort()
    assert.deepEqual(blocked.filter((c) => c.startsWith(`k:${b.root.key.id}`)), [`k:${b.root.key.id}/2001:db8:7:7::/64`, `k:${b.root.key.id}/user-a`])
  })

  it('past the limit, an unknown key already answered is refused without a lookup; a new one is looked up once', async (ctx) => {
    const b = await backend(t)
    const unknown = Array.from({ length: 4 }, () => generateKey(DEFAULT_PREFIX).secret)
    const lookups = ctx.mock.method(t.app.store, 'findVersionByHash')
    for (const key of unknown.slice(0, 3)) assert.equal((await b.verify({ key })).json().code, 'NOT_FOUND')
    assert.equal(lookups.mock.callCount(), 3)
    for (let i = 0; i < 5; i++) assert.equal((await b.verify({ key: unknown[i % 3] })).statusCode, 429)
    assert.equal(lookups.mock.callCount(), 3, 'the negative cache answers')
    for (let i = 0; i < 3; i++) assert.equal((await b.verify({ key: unknown[3] })).statusCode, 429)
    assert.equal(lookups.mock.callCount(), 4, 'a new key is looked up once: it might have been valid')
  })

  it('refused credentials count per client address: past the limit 429, and valid callers there still verify', async () => {
    const b = await backend(t)
    const guess = (remoteAddress: string) => t.app.inject({
      method: 'POST', url: '/api/keys/verify', headers: { authorization: `Bearer ${generateKey(DEFAULT_PREFIX).secret}` }, payload: { key: b.good.secret }, remoteAddress
    }).then((r) => r.statusCode)
    assert.deepEqual([await guess('2001:db8:66::1'), await guess('2001:db8:66::2'), await guess('2001:db8:66::3'), await guess('2001:db8:66::4')],
      [401, 401, 401, 429])
    assert.equal(await guess('2001:db8:67::1'), 401, 'another /64')
    assert.equal((await b.verify({ key: b.good.secret }, '2001:db8:66::5')).json().code, 'VALID', 'a valid credential from the blocked /64')
  })

  it('refuses a bad `client` with 400', async () => {
    const b = await backend(t)
    for (const client of ['', 'x'.repeat(201), 'a\nb', 5, null]) {
      const res = await b.verify({ key: b.good.secret, client })
      assert.equal(res.statusCode, 400, JSON.stringify(client))
      assert.deepEqual(Object.keys(res.json()).sort(), ERROR_KEYS)
    }
    assert.equal((await b.verify({ key: b.good.secret, client: 'x'.repeat(200) })).json().code, 'VALID')
  })
})

describe('on the real Redis, shared by two instances', () => {
  const suite = suiteScope()
  let instances: Instances<2>
  before(async () => { instances = await createInstances(suite, 2) })

  it('a backend relaying 1,000 bad keys keeps verifying good ones; the other instance refuses its failures, not its good keys', async (ctx) => {
    const { apps: [a, b], prefix } = instances
    const relayed = await relay(a)
    const redis = redisClient()
    onScopeEnd(ctx, () => redis.disconnect())
    assert.ok(await redis.pttl(`${prefix}rl:verifyFailures:b:k:${relayed.root.key.id}`) > 0, 'the block is in Redis')
    const onB = (key: string) => b.app.inject({ method: 'POST', url: '/api/keys/verify', headers: relayed.headers, payload: { key }, remoteAddress: '203.0.113.51' })
    assert.equal((await onB(malformed())).statusCode, 429)
    assert.equal((await onB(relayed.good.secret)).json().code, 'VALID')
  })
})
