import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, before, describe, it } from 'node:test'
import { DEFAULT_PREFIX, generateKey } from '../../plugins/app/keys/format.ts'
import { setTimeout as sleep } from 'node:timers/promises'
import { createInstances, createTestApp, ManualClock, registerUser, type TestApp } from '../helpers/app.ts'
import { startRedis } from '../helpers/redis.ts'
import { oneConnection } from '../helpers/one-connection.ts'
import { freePort } from '../helpers/server.ts'
import { testDir } from '../helpers/tmp.ts'
import { until } from '../helpers/until.ts'

type User = Awaited<ReturnType<typeof registerUser>>

async function issue (t: TestApp, user: User, body: Record<string, unknown> = {}) {
  const res = await t.app.inject({ method: 'POST', url: '/api/keys', headers: user.headers, payload: { kind: 'issued', name: 'client key', ...body } })
  assert.equal(res.statusCode, 201, res.body)
  return res.json() as { key: { id: string }, secret: string }
}

function verify (t: TestApp, headers: Record<string, string>, payload: Record<string, unknown>) {
  return t.app.inject({ method: 'POST', url: '/api/keys/verify', headers, payload })
}

describe('POST /api/keys/verify', () => {
  let t: TestApp
  const clock = new ManualClock(Date.UTC(2026, 10, 26, 12, 0, 0))
  before(async () => { t = await createTestApp({ USAGE_FLUSH_INTERVAL_MS: '60000' }, { clock }) })
  after(async () => { await t.close() })

  const check = async (user: User, payload: Record<string, unknown>) => {
    const res = await verify(t, user.headers, payload)
    assert.equal(res.statusCode, 200, res.body)
    return res.json()
  }

  it('VALID: answers the key\'s description and usage including this call', async () => {
    const user = await registerUser(t.app)
    const { key, secret } = await issue(t, user, { scopes: ['read', 'write'], metadata: { plan: 'pro' }, environment: 'production', monthlyLimit: 100 })
    const body = await check(user, { key: secret, scopes: ['read'] })
    assert.deepEqual(body, {
      valid: true,
      code: 'VALID',
      keyId: key.id,
      name: 'client key',
      environment: 'production',
      scopes: ['read', 'write'],
      metadata: { plan: 'pro' },
      expiresAt: null,
      usage: { used: 1, limit: 100, remaining: 99, resetAt: '2026-12-01T00:00:00.000Z' }
    })
    assert.equal((await check(user, { key: secret, cost: 5 })).usage.used, 6)
  })

  it('MALFORMED: a checksum failure answers without any lookup', async (ctx) => {
    const user = await registerUser(t.app)
    const { secret } = await issue(t, user)
    const lookups = ctx.mock.method(t.app.store, 'findVersionByHash')
    const typo = secret.slice(0, 10) + (secret[10] === 'x' ? 'y' : 'x') + secret.slice(11)
    for (const key of [typo, 'kw_short', 'x'.repeat(60), secret + 'a']) {
      assert.deepEqual(await check(user, { key }), { valid: false, code: 'MALFORMED' })
    }
    assert.equal(lookups.mock.callCount(), 0)
  })

  it('NOT_FOUND: unknown keys are negative-cached, so repeating one does not reach the store', async (ctx) => {
    const user = await registerUser(t.app)
    const unknown = generateKey(DEFAULT_PREFIX).secret
    const lookups = ctx.mock.method(t.app.store, 'findVersionByHash')
    for (let i = 0; i < 20; i++) assert.deepEqual(await check(user, { key: unknown }), { valid: false, code: 'NOT_FOUND' })
    assert.equal(lookups.mock.callCount(), 1)
  })

  it('another owner\'s key is indistinguishable from an unknown key', async () => {
    const owner = await registerUser(t.app)
    const other = await registerUser(t.app)
    const { secret } = await issue(t, owner)
    const foreign = await verify(t, other.headers, { key: secret })
    const unknown = await verify(t, other.headers, { key: generateKey(DEFAULT_PREFIX).secret })
    assert.equal(foreign.statusCode, unknown.statusCode)
    assert.equal(foreign.body, unknown.body)
    assert.deepEqual(foreign.json(), { valid: false, code: 'NOT_FOUND' })
  })

  it('DISABLED, REVOKED and EXPIRED (exact to the second, whatever the jobs did)', async () => {
    const user = await registerUser(t.app)
    const disabled = await issue(t, user)
    await t.app.inject({ method: 'PATCH', url: `/api/keys/${disabled.key.id}`, headers: user.headers, payload: { status: 'disabled' } })
    assert.equal((await check(user, { key: disabled.secret })).code, 'DISABLED')
    const revoked = await issue(t, user)
    await t.app.inject({ method: 'DELETE', url: `/api/keys/${revoked.key.id}`, headers: user.headers })
    assert.equal((await check(user, { key: revoked.secret })).code, 'REVOKED')

    const expiresAt = clock.now() + 10_000
    const expiring = await issue(t, user, { expiresAt: new Date(expiresAt).toISOString() })
    clock.advance(9_999)
    assert.equal((await check(user, { key: expiring.secret })).code, 'VALID')
    clock.advance(1)
    const expired = await check(user, { key: expiring.secret })
    assert.equal(expired.code, 'EXPIRED')
    assert.equal(expired.valid, false)
    assert.equal((await t.app.store.getKey(user.user.id, expiring.key.id))?.status, 'active', 'no job has run; the answer still says EXPIRED')
  })

  it('INSUFFICIENT_SCOPES unless every requested scope is on the key; * grants all', async () => {
    const user = await registerUser(t.app)
    const { secret } = await issue(t, user, { scopes: ['read'] })
    assert.equal((await check(user, { key: secret, scopes: ['read', 'write'] })).code, 'INSUFFICIENT_SCOPES')
    assert.equal((await check(user, { key: secret, scopes: [] })).code, 'VALID')
    const star = await issue(t, user, { scopes: ['*'] })
    assert.equal((await check(user, { key: star.secret, scopes: ['anything'] })).code, 'VALID')
  })

  it('checks in order, and a rate-limited or usage-exceeded call is not charged', async () => {
    const user = await registerUser(t.app)
    const both = await issue(t, user, { scopes: ['read'] })
    await t.app.inject({ method: 'PATCH', url: `/api/keys/${both.key.id}`, headers: user.headers, payload: { status: 'disabled' } })
    assert.equal((await check(user, { key: both.secret, scopes: ['write'] })).code, 'DISABLED', 'status before scopes')

    const limited = await issue(t, user, { scopes: ['read'], monthlyLimit: 2, rateLimit: { limit: 2, windowMs: 60_000 } })
    assert.equal((await check(user, { key: limited.secret, scopes: ['write'] })).code, 'INSUFFICIENT_SCOPES', 'scopes before the rate limit')
    assert.equal((await check(user, { key: limited.secret })).code, 'VALID')
    const second = await check(user, { key: limited.secret })
    assert.equal(second.code, 'VALID')
    assert.deepEqual(second.usage, { used: 2, limit: 2, remaining: 0, resetAt: '2026-12-01T00:00:00.000Z' })
    const rate = await check(user, { key: limited.secret })
    assert.equal(rate.code, 'RATE_LIMITED', 'the rate limit before monthly usage')
    assert.equal(rate.ratelimit.remaining, 0)
    clock.advance(60_000)
    const usage = await check(user, { key: limited.secret })
    assert.equal(usage.code, 'USAGE_EXCEEDED')
    assert.deepEqual(usage.usage, { used: 2, limit: 2, remaining: 0, resetAt: '2026-12-01T00:00:00.000Z' })
    await t.app.meter.flush()
    const month = await t.app.store.monthlyUsage(user.user.id, Date.UTC(2026, 10, 1), [limited.key.id])
    assert.equal(month[0]?.units, 2, 'only the two valid calls were charged')
  })

  it('RATE_LIMITED: a token bucket of `limit` per window with a `burst` capacity', async () => {
    const user = await registerUser(t.app)
    const { secret } = await issue(t, user, { rateLimit: { limit: 10, windowMs: 10_000, burst: 3 } })
    const start = clock.now()
    const at = (ms: number) => new Date(start + ms).toISOString()
    const answers = []
    for (let i = 0; i < 4; i++) answers.push(await check(user, { key: secret }))
    assert.deepEqual(answers.map((a) => a.code), ['VALID', 'VALID', 'VALID', 'RATE_LIMITED'], 'a burst of 3')
    // The bucket is full again one second per missing token later, in the answer of every call.
    assert.deepEqual(answers.map((a) => a.ratelimit), [
      { limit: 10, remaining: 2, resetAt: at(1000) },
      { limit: 10, remaining: 1, resetAt: at(2000) },
      { limit: 10, remaining: 0, resetAt: at(3000) },
      { limit: 10, remaining: 0, resetAt: at(3000) }
    ])
    clock.advance(1000)
    const refilled = await check(user, { key: secret })
    assert.equal(refilled.code, 'VALID', 'one token per second refills')
    assert.deepEqual(refilled.ratelimit, { limit: 10, remaining: 0, resetAt: at(4000) })
    assert.equal((await check(user, { key: secret })).code, 'RATE_LIMITED')
  })

  it('a key in its rotation grace period verifies as the same key, then EXPIRED', async () => {
    const user = await registerUser(t.app)
    const original = await issue(t, user)
    const rotated = await t.app.inject({ method: 'POST', url: `/api/keys/${original.key.id}/rotate`, headers: user.headers, payload: { gracePeriodSeconds: 60 } })
    const next = rotated.json().secret
    const old = await check(user, { key: original.secret })
    assert.equal(old.code, 'VALID')
    assert.equal(old.keyId, original.key.id)
    assert.equal((await check(user, { key: next })).code, 'VALID')
    clock.advance(59_000)
    assert.equal((await check(user, { key: original.secret })).code, 'VALID')
    clock.advance(1_000)
    assert.equal((await check(user, { key: original.secret })).code, 'EXPIRED')
    assert.equal((await check(user, { key: next })).code, 'VALID')

    const again = await t.app.inject({ method: 'POST', url: `/api/keys/${original.key.id}/rotate`, headers: user.headers, payload: {} })
    assert.equal((await check(user, { key: next })).code, 'EXPIRED', 'without a grace period the old secret stops at once')
    assert.equal((await check(user, { key: again.json().secret })).code, 'VALID')
  })

  it('accepts an issued key with the keyward:verify scope as the caller, and nothing else', async () => {
    const user = await registerUser(t.app)
    const target = await issue(t, user)
    const root = await issue(t, user, { scopes: ['keyward:verify'] })
    const plain = await issue(t, user)
    const ok = await verify(t, { authorization: `Bearer ${root.secret}` }, { key: target.secret })
    assert.equal(ok.json().code, 'VALID')
    const other = await registerUser(t.app)
    const foreign = await verify(t, { authorization: `Bearer ${root.secret}` }, { key: (await issue(t, other)).secret })
    assert.equal(foreign.json().code, 'NOT_FOUND', 'a root key sees its owner\'s keys only')
    for (const authorization of [`Bearer ${plain.secret}`, 'Bearer kw_made_up', 'Bearer a.b.c', '', `Basic ${root.secret}`]) {
      const res = await verify(t, authorization === '' ? {} : { authorization }, { key: target.secret })
      assert.equal(res.statusCode, 401, authorization)
    }
    await t.app.inject({ method: 'DELETE', url: `/api/keys/${root.key.id}`, headers: user.headers })
    assert.equal((await verify(t, { authorization: `Bearer ${root.secret}` }, { key: target.secret })).statusCode, 401, 'a revoked root key stops at once here')
  })

  it('bad input is a 400 in the error shape and charges nothing', async () => {
    const user = await registerUser(t.app)
    const { key, secret } = await issue(t, user, { monthlyLimit: 10 })
    for (const payload of [{}, { key: 5 }, { key: secret, cost: -1 }, { key: secret, cost: 1.5 }, { key: secret, scopes: 'read' },
      { key: secret, extra: true }, { key: 'k'.repeat(200) }, { key: secret, scopes: Array.from({ length: 51 }, () => 'a') }]) {
      const res = await verify(t, user.headers, payload)
      assert.equal(res.statusCode, 400, JSON.stringify(payload))
      assert.deepEqual(Object.keys(res.json()).sort(), ['code', 'error', 'message', 'requestId', 'statusCode'])
    }
    await t.app.meter.flush()
    assert.deepEqual(await t.app.store.monthlyUsage(user.user.id, Date.UTC(2026, 10, 1), [key.id]), [])
  })
})

describe('usage routes', () => {
  let t: TestApp
  const clock = new ManualClock(Date.UTC(2026, 10, 26, 12, 30, 0))
  before(async () => { t = await createTestApp({ USAGE_FLUSH_INTERVAL_MS: '60000' }, { clock }) })
  after(async () => { await t.close() })

  it('series by hour, day and month; summary by key and service', async () => {
    const user = await registerUser(t.app)
    const a = await issue(t, user, { service: 'billing' })
    const b = await issue(t, user, { service: 'search' })
    for (let i = 0; i < 3; i++) await verify(t, user.headers, { key: a.secret })
    clock.advance(3_600_000)
    const login = await t.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: user.email, password: user.password } })
    user.headers.authorization = `Bearer ${login.json().accessToken}`
    await verify(t, user.headers, { key: a.secret, cost: 10 })
    await verify(t, user.headers, { key: b.secret })
    await t.app.meter.flush()

    const hourlyRes = await t.app.inject({ method: 'GET', url: `/api/keys/${a.key.id}/usage`, headers: user.headers })
    assert.equal(hourlyRes.statusCode, 200, hourlyRes.body)
    const hourly = hourlyRes.json()
    assert.deepEqual(hourly.points, [
      { start: '2026-11-26T12:00:00.000Z', units: 3, requests: 3 },
      { start: '2026-11-26T13:00:00.000Z', units: 10, requests: 1 }
    ])
    assert.deepEqual(hourly.total, { units: 13, requests: 4 })
    const daily = (await t.app.inject({ method: 'GET', url: `/api/keys/${a.key.id}/usage?granularity=day`, headers: user.headers })).json()
    assert.deepEqual(daily.points, [{ start: '2026-11-26T00:00:00.000Z', units: 13, requests: 4 }])
    const monthly = (await t.app.inject({ method: 'GET', url: `/api/keys/${a.key.id}/usage?granularity=month`, headers: user.headers })).json()
    assert.deepEqual(monthly.points, [{ start: '2026-11-01T00:00:00.000Z', units: 13, requests: 4 }])

    const summary = (await t.app.inject({ method: 'GET', url: '/api/usage/summary', headers: user.headers })).json()
    assert.equal(summary.month, '2026-11-01T00:00:00.000Z')
    assert.deepEqual(summary.total, { units: 14, requests: 5 })
    assert.deepEqual(summary.byService, { billing: { units: 13, requests: 4 }, search: { units: 1, requests: 1 } })
    assert.deepEqual(summary.topKeys.map((k: { keyId: string }) => k.keyId), [a.key.id, b.key.id])
  })

  it('refuses bad ranges and other owners\' keys', async () => {
    const user = await registerUser(t.app)
    const { key } = await issue(t, user)
    for (const query of ['granularity=week', 'from=yesterday', 'from=2026-11-27T00:00:00Z&to=2026-11-26T00:00:00Z', 'from=2026-01-01T00:00:00Z&to=2026-11-26T00:00:00Z', 'extra=1']) {
      assert.equal((await t.app.inject({ method: 'GET', url: `/api/keys/${key.id}/usage?${query}`, headers: user.headers })).statusCode, 400, query)
    }
    const other = await registerUser(t.app)
    assert.equal((await t.app.inject({ method: 'GET', url: `/api/keys/${key.id}/usage`, headers: other.headers })).statusCode, 404)
    assert.equal((await t.app.inject({ method: 'POST', url: `/api/keys/${key.id}/usage`, headers: other.headers, payload: { count: 1 } })).statusCode, 404)
  })

  it('records usage of a key; an Idempotency-Key makes a retry count once', async () => {
    const user = await registerUser(t.app)
    const { key } = await t.app.inject({ method: 'POST', url: '/api/keys', headers: user.headers, payload: { kind: 'issued', name: 'metered', monthlyLimit: 100 } }).then((r) => r.json())
    const post = (headers: Record<string, string>, payload: object) =>
      t.app.inject({ method: 'POST', url: `/api/keys/${key.id}/usage`, headers: { ...user.headers, ...headers }, payload })
    const first = await post({ 'idempotency-key': 'req-1' }, { count: 3, cost: 30 })
    assert.equal(first.statusCode, 201)
    assert.deepEqual(first.json(), { keyId: key.id, duplicate: false, month: { units: 30, requests: 3, limit: 100, remaining: 70 } })
    const retry = await post({ 'idempotency-key': 'req-1' }, { count: 3, cost: 30 })
    assert.equal(retry.statusCode, 200)
    assert.equal(retry.json().duplicate, true)
    assert.equal(retry.json().month.units, 30)
    assert.equal((await post({}, { count: 2 })).json().month.units, 32, 'without the header each request counts')
    for (const payload of [{}, { count: 0 }, { count: 'one' }, { count: 1, extra: 1 }]) {
      assert.equal((await post({}, payload)).statusCode, 400)
    }
    assert.equal((await post({ 'idempotency-key': 'bad key with spaces' }, { count: 1 })).statusCode, 400)
    const verified = await verify(t, user.headers, { key: 'x' })
    assert.equal(verified.json().code, 'MALFORMED')
  })
})

describe('verification across instances and restarts', () => {
  it('a revoked key stops verifying on another instance within 1 second', async (ctx) => {
    const { apps: [a, b] } = await createInstances(ctx, 2)
    const user = await registerUser(a.app)
    const { key, secret } = await issue(a, user)
    assert.equal((await verify(b, user.headers, { key: secret })).json().code, 'VALID', 'B has it cached')
    const revokedAt = Date.now()
    await a.app.inject({ method: 'DELETE', url: `/api/keys/${key.id}`, headers: user.headers })
    let code = 'VALID'
    await until(async () => {
      code = (await verify(b, user.headers, { key: secret })).json().code
      return code === 'REVOKED'
    }, 1000, () => `REVOKED within a second on B (still ${code})`)
    assert.ok(Date.now() - revokedAt < 1000, 'within a second of the revocation')
  })

  it('a monthly limit is overshot across instances by at most the other instance\'s unsynced traffic', async (ctx) => {
    const clock = new ManualClock()
    const { apps: [a, b] } = await createInstances(ctx, 2, { USAGE_FLUSH_INTERVAL_MS: '60000' }, { redis: false, clock })
    const user = await registerUser(a.app)
    const { key, secret } = await issue(a, user, { monthlyLimit: 10 })
    const run = async (t: TestApp, n: number) => {
      let valid = 0
      for (let i = 0; i < n; i++) if ((await verify(t, user.headers, { key: secret })).json().valid === true) valid++
      return valid
    }
    // Neither instance has flushed: each sees only its own charges.
    assert.equal(await run(a, 8), 8)
    assert.equal(await run(b, 8), 8, 'B cannot see A\'s 8 unflushed charges: the overshoot (6) is within A\'s unflushed traffic (8)')
    assert.equal(await run(a, 5), 2, 'A still stops at its own view of the limit')
    await a.app.meter.flush()
    await b.app.meter.flush()
    // One flush interval later each instance re-reads the shared total: nothing more gets through.
    clock.advance(60_001)
    assert.equal(await run(a, 3) + await run(b, 3), 0)
    const month = await a.app.store.monthlyUsage(user.user.id, Date.UTC(new Date(clock.now()).getUTCFullYear(), new Date(clock.now()).getUTCMonth(), 1), [key.id])
    assert.equal(month[0]?.units, 18, 'everything answered VALID was charged, nothing else')
  })

  it('with Redis, a monthly limit holds exactly across instances under concurrency', async (ctx) => {
    // Both instances share the test runner's event loop: 2,000 calls in flight hold Redis's replies
    // past the 300 ms default, which would (rightly) fall back to each process's own view.
    const { apps: [a, b] } = await createInstances(ctx, 2, { USAGE_FLUSH_INTERVAL_MS: '60000', REDIS_COMMAND_TIMEOUT_MS: '10000' })
    const user = await registerUser(a.app)
    const { key, secret } = await issue(a, user, { monthlyLimit: 200 })
    const answers = await Promise.all(Array.from({ length: 2000 }, (_, i) => verify(i % 2 === 0 ? a : b, user.headers, { key: secret })))
    const codes = answers.map((r) => r.json().code)
    assert.equal(codes.filter((c) => c === 'VALID').length, 200, 'exactly the limit, not the limit per instance')
    assert.equal(codes.filter((c) => c === 'USAGE_EXCEEDED').length, 1800)
    await a.app.meter.flush()
    await b.app.meter.flush()
    const now = new Date()
    const month = await a.app.store.monthlyUsage(user.user.id, Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1), [key.id])
    assert.equal(month[0]?.units, 200, 'the store, written behind, holds every VALID charge')
  })

  it('with Redis down, the monthly limit is kept from memory; back up, the shared counter starts from what the process knows', async (ctx) => {
    const port = await freePort()
    let redis = await startRedis(port)
    ctx.after(() => { redis.kill('SIGKILL') })
    const t = await createTestApp(ctx, { REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_PREFIX: 'kwmonthly:', USAGE_FLUSH_INTERVAL_MS: '60000' })
    const user = await registerUser(t.app)
    const { secret } = await issue(t, user, { monthlyLimit: 5 })
    const codes = async (n: number) => {
      const out: string[] = []
      for (let i = 0; i < n; i++) out.push((await verify(t, user.headers, { key: secret })).json().code)
      return out
    }
    assert.deepEqual(await codes(2), ['VALID', 'VALID'])
    redis.kill('SIGKILL')
    await once(redis, 'exit')
    // Lets the client notice the closed connection, as a real outage would.
    await sleep(100)
    assert.deepEqual(await codes(2), ['VALID', 'VALID'], 'decided from memory, counting the 2 charged through Redis')
    redis = await startRedis(port)
    await until(() => t.app.redis?.status === 'ready', 5000, 'Redis is ready again')
    assert.deepEqual(await codes(2), ['VALID', 'USAGE_EXCEEDED'], 'the empty counter starts from the 4 this process charged')
  })

  it('a single instance never overshoots', async (ctx) => {
    const t = await createTestApp(ctx, { USAGE_FLUSH_INTERVAL_MS: '60000' })
    const user = await registerUser(t.app)
    const { secret } = await issue(t, user, { monthlyLimit: 5 })
    const answers = await Promise.all(Array.from({ length: 20 }, () => verify(t, user.headers, { key: secret })))
    assert.equal(answers.filter((r) => r.json().valid === true).length, 5)
  })

  it('usage from verification reaches the store within 2 seconds and survives a graceful restart', async (ctx) => {
    const dataDir = await testDir(ctx, 'verify-restart')
    const first = await createTestApp(ctx, {}, { dataDir })
    const user = await registerUser(first.app)
    const issued = await issue(first, user)
    const keyId = issued.key.id
    for (let i = 0; i < 7; i++) await verify(first, user.headers, { key: issued.secret })
    let units = 0
    await until(async () => {
      units = (await first.app.inject({ method: 'GET', url: `/api/keys/${keyId}/usage`, headers: user.headers })).json().total.units
      return units === 7
    }, 2000, () => `7 units visible in the usage series within 2 seconds (${units})`, 100)
    for (let i = 0; i < 3; i++) await verify(first, user.headers, { key: issued.secret })
    await first.close()
    const second = await createTestApp(ctx, {}, { dataDir })
    const series = (await second.app.inject({ method: 'GET', url: `/api/keys/${keyId}/usage`, headers: user.headers })).json()
    assert.equal(series.total.units, 10, 'the 3 unflushed calls were flushed on shutdown')
    assert.ok((await second.app.store.getKey(user.user.id, keyId))?.lastUsedAt, 'lastUsedAt was written')
  })
})

describe('a verify key revoked while its check is in flight', () => {
  it('the call that began before answers as it began; the caller is not remembered, so the next call is refused', async (ctx) => {
    const t = await createTestApp(ctx, { JOBS_EMBEDDED: 'false' })
    const user = await registerUser(t.app)
    const target = await issue(t, user)
    const root = await issue(t, user, { scopes: ['keyward:verify'] })
    const verify = () => t.app.inject({ method: 'POST', url: '/api/keys/verify', headers: { authorization: `Bearer ${root.secret}` }, payload: { key: target.secret } })
    // The caller's record is read while the key is active, then held until after the revocation.
    const store = t.app.store
    const read = store.findCredentialByHash.bind(store)
    let reached!: () => void
    let release!: () => void
    const reading = new Promise<void>((resolve) => { reached = resolve })
    const held = new Promise<void>((resolve) => { release = resolve })
    store.findCredentialByHash = async (hash: string) => {
      const found = await read(hash)
      reached()
      await held
      return found
    }
    const inFlight = verify()
    await reading
    store.findCredentialByHash = read
    const revoked = await t.app.inject({ method: 'DELETE', url: `/api/keys/${root.key.id}`, headers: user.headers })
    assert.ok(revoked.statusCode < 300, `revoked: ${revoked.statusCode}`)
    release()
    assert.equal((await inFlight).json().code, 'VALID', 'the call in flight was checked before the revocation')
    assert.equal((await verify()).statusCode, 401, 'the caller resolved during the revocation was born stale')
  })
})

describe('verify on one keep-alive connection', () => {
  it('the connection\'s caller memo keeps the bounds: a revoked verify key stops at once, a signed-out session within a second', async (ctx) => {
    const t = await createTestApp(ctx, { JOBS_EMBEDDED: 'false' })
    // One socket for every call, so each call after the first meets the memo.
    const connection = oneConnection(ctx, await t.app.listen({ port: 0, host: '127.0.0.1' }))
    const call = async (authorization: string, key: string) => {
      const res = await connection.send('POST', '/api/keys/verify', { authorization }, { key })
      return { status: res.status, code: res.body.code as string }
    }
    const user = await registerUser(t.app)
    const target = await issue(t, user)
    const root = await issue(t, user, { scopes: ['keyward:verify'] })
    for (let i = 0; i < 3; i++) assert.deepEqual(await call(`Bearer ${root.secret}`, target.secret), { status: 200, code: 'VALID' })
    // Another credential on the same connection is checked on its own.
    assert.equal((await call('Bearer kw_made_up', target.secret)).status, 401)
    assert.equal((await call(`Bearer ${root.secret}`, target.secret)).code, 'VALID')
    await t.app.inject({ method: 'DELETE', url: `/api/keys/${root.key.id}`, headers: user.headers })
    assert.equal((await call(`Bearer ${root.secret}`, target.secret)).status, 401, 'a revoked verify key stops at once on a connection that used it')

    const session = await registerUser(t.app)
    const own = await issue(t, session)
    assert.equal((await call(session.headers.authorization, own.secret)).code, 'VALID')
    assert.equal((await t.app.inject({ method: 'POST', url: '/api/auth/logout', headers: session.headers })).statusCode, 204)
    await until(async () => (await call(session.headers.authorization, own.secret)).status === 401, 1000, 'a signed-out session stops verifying on the connection within a second')
    assert.equal(connection.sockets.size, 1, 'every call went over one connection')
  })
})
