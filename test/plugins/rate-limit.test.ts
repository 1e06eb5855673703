import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, before, describe, it } from 'node:test'
import { Redis } from 'ioredis'
import { MEMORY_LIMITS, MemoryTiers, TierLimiter } from '../../plugins/app/rate-limit/tiers.ts'
import { setTimeout as sleep } from 'node:timers/promises'
import { createInstances, createTestApp, ManualClock, registerUser, type TestApp } from '../helpers/app.ts'
import { dropPrefix, REDIS_URL, redisClient, startRedis, testPrefix } from '../helpers/redis.ts'
import { onScopeEnd } from '../helpers/scope.ts'
import { freePort } from '../helpers/server.ts'
import { until } from '../helpers/until.ts'

const MIN = 60_000
const ERROR_KEYS = ['code', 'error', 'message', 'requestId', 'statusCode']

describe('progressive blocking', () => {
  it('in memory: 15 min, 30 min, 1 h ... capped at 24 h, forgotten after a quiet day (injected clock)', () => {
    const clock = new ManualClock(0)
    const tiers = new MemoryTiers(clock)
    const policy = { blockMs: 15 * MIN, maxBlockMs: 24 * 60 * MIN }
    const exceed = () => {
      let hit = tiers.hit('c', MIN, 2, policy)
      while (!hit.blocked) hit = tiers.hit('c', MIN, 2, policy)
      return hit
    }
    assert.deepEqual(tiers.hit('c', MIN, 2, policy), { current: 1, ttl: MIN, blocked: false })
    const durations = []
    for (let i = 0; i < 8; i++) {
      const hit = exceed()
      assert.equal(hit.newBlock, true)
      durations.push(hit.ttl / MIN)
      const during = tiers.hit('c', MIN, 2, policy)
      assert.equal(during.blocked, true)
      assert.equal(during.newBlock, undefined, 'a hit during a block does not extend it')
      clock.advance(hit.ttl)
    }
    assert.deepEqual(durations, [15, 30, 60, 120, 240, 480, 960, 1440])
    clock.advance(24 * 60 * MIN)
    assert.equal(exceed().ttl, 15 * MIN, 'a day without violations starts over')
  })

  it('in memory: a flood of new clients neither evicts a block nor grows memory past its bound', async () => {
    const clock = new ManualClock(0)
    const limiter = new TierLimiter({ redis: null, prefix: 'kw:', clock, policy: { blockMs: 15 * MIN, maxBlockMs: 24 * 60 * MIN } })
    let hit = await limiter.hit('auth', '198.51.100.66', MIN, 2)
    while (!hit.blocked) hit = await limiter.hit('auth', '198.51.100.66', MIN, 2)
    // More distinct clients than both caches hold together, each counted once (as from a /48's many /64s).
    const flood = MEMORY_LIMITS.counters + MEMORY_LIMITS.penalties + 1000
    for (let i = 0; i < flood; i++) await limiter.hit('auth', `flood-${i}`, MIN, 2)
    clock.advance(MIN)
    const after = await limiter.hit('auth', '198.51.100.66', MIN, 2)
    assert.equal(after.blocked, true, 'the block survives the flood')
    assert.equal(after.ttl, 14 * MIN)
    const size = limiter.memory.size
    assert.ok(size.counters <= MEMORY_LIMITS.counters, `counters ${size.counters}`)
    assert.equal(size.penalties, 1)
  })

  it('on the real Redis: the same doubling, shared by two limiters', async (ctx) => {
    const prefix = testPrefix('rl')
    const a = redisClient()
    const b = redisClient()
    onScopeEnd(ctx, () => dropPrefix(prefix))
    onScopeEnd(ctx, () => { a.disconnect(); b.disconnect() })
    const policy = { blockMs: 150, maxBlockMs: 500 }
    const clock = new ManualClock()
    const one = new TierLimiter({ redis: a, prefix, clock, policy })
    const two = new TierLimiter({ redis: b, prefix, clock, policy })
    assert.equal((await one.hit('t', 'ip', 10_000, 2)).blocked, false)
    assert.equal((await two.hit('t', 'ip', 10_000, 2)).current, 2, 'one count across limiters')
    const first = await one.hit('t', 'ip', 10_000, 2)
    assert.deepEqual([first.blocked, first.newBlock, first.ttl], [true, true, 150])
    const seen = await two.hit('t', 'ip', 10_000, 2)
    assert.equal(seen.blocked, true, 'the block is shared')
    assert.ok(seen.ttl <= 150 && seen.ttl > 0)
    const ttls = [150]
    for (let i = 0; i < 3; i++) {
      await sleep(ttls[ttls.length - 1]! + 30) // the block runs out
      let hit = await one.hit('t', 'ip', 10_000, 2)
      while (!hit.blocked) hit = await one.hit('t', 'ip', 10_000, 2)
      ttls.push(hit.ttl)
    }
    assert.deepEqual(ttls, [150, 300, 500, 500], 'doubling, capped')
    const blocked = await one.blockedClients()
    assert.deepEqual(blocked.map((x) => [x.tier, x.client]), [['t', 'ip']])
  })
})

// Embedded mode (no Redis) is what a default install runs: the tiers count in process memory.
for (const shared of [true, false]) {
  describe(`tiers in the application (${shared ? 'Redis' : 'embedded, no Redis'})`, () => {
    let t: TestApp
    const prefix = testPrefix('tiers')
    before(async () => {
      t = await createTestApp({ GENERAL_RATE_LIMIT_MAX: '3', VERIFY_FAILURE_LIMIT_MAX: '3', METRICS_TOKEN: 'tiers-metrics-token-0123456789', ...(shared ? { REDIS_URL, REDIS_PREFIX: prefix } : {}) })
    })
    after(async () => {
      await t.close()
      await dropPrefix(prefix)
    })

    it('the general tier: RateLimit headers on allowed answers, then 429 RATE_LIMITED with Retry-After', async () => {
      const user = await registerUser(t.app)
      const ip = '198.51.100.1'
      const get = () => t.app.inject({ method: 'GET', url: '/api/auth/me', headers: user.headers, remoteAddress: ip })
      const first = await get()
      assert.equal(first.statusCode, 200)
      assert.equal(first.headers['ratelimit-limit'], '3')
      assert.equal(first.headers['ratelimit-remaining'], '2')
      assert.ok(Number(first.headers['ratelimit-reset']) > 0)
      await get()
      await get()
      const limited = await get()
      assert.equal(limited.statusCode, 429)
      assert.deepEqual(Object.keys(limited.json()).sort(), ERROR_KEYS)
      assert.equal(limited.json().code, 'RATE_LIMITED')
      assert.equal(limited.headers['retry-after'], String(15 * 60), 'blocked for the first block duration')
      assert.equal(limited.headers['ratelimit-remaining'], '0')
      assert.equal((await t.app.inject({ method: 'GET', url: '/api/auth/me', headers: user.headers, remoteAddress: '198.51.100.2' })).statusCode, 200, 'another IP')
    })

    it('never applies to verify calls; health from an allowed address is never limited', async () => {
      const user = await registerUser(t.app)
      const key = (await t.app.inject({ method: 'POST', url: '/api/keys', headers: user.headers, payload: { kind: 'issued', name: 'x' } })).json().secret
      for (let i = 0; i < 10; i++) {
        const res = await t.app.inject({ method: 'POST', url: '/api/keys/verify', headers: user.headers, payload: { key }, remoteAddress: '198.51.100.3' })
        assert.equal(res.statusCode, 200)
        assert.equal(res.headers['ratelimit-limit'], undefined)
      }
      for (let i = 0; i < 10; i++) assert.equal((await t.app.inject({ method: 'GET', url: '/api/health' })).statusCode, 200)
      const counted = await t.app.inject({ method: 'GET', url: '/api/health', remoteAddress: '198.51.100.4' })
      assert.equal(counted.headers['ratelimit-limit'], '3', 'health from elsewhere carries the general tier\'s headers')
      assert.equal(counted.headers['ratelimit-remaining'], '2')
      assert.equal((await t.app.inject({ method: 'GET', url: '/docs/json', remoteAddress: '198.51.100.4' })).headers['ratelimit-remaining'], '1', 'one count with the other routes')
      let status = 200
      for (let i = 0; i < 3; i++) status = (await t.app.inject({ method: 'GET', url: '/api/health', remoteAddress: '198.51.100.4' })).statusCode
      assert.equal(status, 429, 'health from elsewhere counts in the general tier')
      const refused = await t.app.inject({ method: 'GET', url: '/api/health', remoteAddress: '198.51.100.4' })
      assert.equal(refused.json().code, 'RATE_LIMITED')
      assert.ok(Number(refused.headers['retry-after']) > 0)
      const scrape = (remoteAddress?: string) => t.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer tiers-metrics-token-0123456789' }, ...(remoteAddress === undefined ? {} : { remoteAddress }) })
      for (let i = 0; i < 5; i++) assert.equal((await scrape()).statusCode, 200, 'metrics from an allowed address are never limited')
      const scrapes = []
      for (let i = 0; i < 5; i++) scrapes.push((await scrape('198.51.100.14')).statusCode)
      assert.deepEqual(scrapes, [200, 200, 200, 429, 429], 'metrics from elsewhere count in the general tier')
      // The allow-list is health's (and /metrics'): an allowed address is counted on any other route.
      const other = []
      for (let i = 0; i < 10; i++) other.push((await t.app.inject({ method: 'GET', url: '/docs/json', remoteAddress: '127.0.0.9' })).statusCode)
      assert.ok(other.includes(429), `an allowed address on another route: ${other.join(', ')}`)
    })

    it('the verify-failure tier refuses a caller\'s failing calls past the limit, never its valid keys', async () => {
      const user = await registerUser(t.app)
      const key = (await t.app.inject({ method: 'POST', url: '/api/keys', headers: user.headers, payload: { kind: 'issued', name: 'x' } })).json().secret
      const verify = (k: string, headers = user.headers) => t.app.inject({ method: 'POST', url: '/api/keys/verify', headers, payload: { key: k }, remoteAddress: '198.51.100.5' })
      for (let i = 0; i < 3; i++) assert.equal((await verify('kw_guess' + i)).json().code, 'MALFORMED')
      assert.equal((await verify(key)).json().code, 'VALID', 'valid answers do not count')
      const refused = await verify('kw_guess')
      assert.equal(refused.statusCode, 429, 'the exceeding call is refused, and starts the block')
      assert.deepEqual(Object.keys(refused.json()).sort(), ERROR_KEYS)
      assert.equal(refused.json().code, 'RATE_LIMITED')
      assert.equal(refused.headers['retry-after'], String(15 * 60))
      assert.equal((await verify(key)).json().code, 'VALID', 'the caller\'s valid keys still verify')
      const other = await registerUser(t.app)
      assert.equal((await verify('kw_guess', other.headers)).json().code, 'MALFORMED', 'other callers, even from the same address, are unaffected')
    })

    it('the admin report lists the tiers and the blocked clients', async () => {
      const admin = await registerUser(t.app)
      await t.app.auth.setRole(admin.email, 'admin')
      const res = await t.app.inject({ method: 'GET', url: '/api/system/rate-limits', headers: admin.headers })
      assert.equal(res.statusCode, 200)
      const report = res.json()
      assert.equal(report.store, shared ? 'redis' : 'memory')
      assert.equal(report.fallbackActive, false)
      assert.deepEqual(report.tiers.map((x: { name: string }) => x.name), ['general', 'auth', 'keyCreation', 'heavy', 'verify', 'verifyFailures'])
      const clients = report.blocked.map((b: { tier: string, client: string }) => `${b.tier}/${b.client}`)
      assert.ok(clients.includes('general/198.51.100.1'), clients.join(','))
      assert.ok(clients.some((c: string) => c.startsWith('verifyFailures/s:')), clients.join(','))
      const user = await registerUser(t.app)
      assert.equal((await t.app.inject({ method: 'GET', url: '/api/system/rate-limits', headers: user.headers })).statusCode, 403)
    })
  })
}

describe('the verify tier', () => {
  it('is off by default, and when set limits each caller credential', async (ctx) => {
    const t = await createTestApp(ctx, { VERIFY_RATE_LIMIT_MAX: '2' })
    const user = await registerUser(t.app)
    const key = (await t.app.inject({ method: 'POST', url: '/api/keys', headers: user.headers, payload: { kind: 'issued', name: 'x' } })).json().secret
    const verify = () => t.app.inject({ method: 'POST', url: '/api/keys/verify', headers: user.headers, payload: { key } })
    assert.equal((await verify()).statusCode, 200)
    assert.equal((await verify()).statusCode, 200)
    const limited = await verify()
    assert.equal(limited.statusCode, 429)
    assert.equal(limited.headers['ratelimit-limit'], '2')
  })
})

describe('shared limits and client addresses', () => {
  it('two instances on one Redis share one count', async (ctx) => {
    const { apps: [a, b] } = await createInstances(ctx, 2, { GENERAL_RATE_LIMIT_MAX: '4' })
    const hit = (t: TestApp) => t.app.inject({ method: 'GET', url: '/api/nope', remoteAddress: '203.0.113.7' }).then((r) => r.statusCode)
    assert.deepEqual([await hit(a), await hit(b), await hit(a), await hit(b)], [404, 404, 404, 404])
    assert.equal(await hit(a), 429)
    assert.equal(await hit(b), 429, 'the block is shared')
  })

  it('an IPv6 client counts by its /64 in the per-address tiers; an IPv4-mapped address as its IPv4 address', async (ctx) => {
    const t = await createTestApp(ctx, { GENERAL_RATE_LIMIT_MAX: '2', AUTH_RATE_LIMIT_MAX: '2' })
    const hit = (remoteAddress: string) => t.app.inject({ method: 'GET', url: '/api/nope', remoteAddress }).then((r) => r.statusCode)
    assert.deepEqual([await hit('2001:db8:1:1::1'), await hit('2001:db8:1:1::2'), await hit('2001:db8:1:1:abcd:ef:1:9')], [404, 404, 429],
      'two addresses of one /64 share the general bucket')
    assert.equal(await hit('2001:db8:1:2::1'), 404, 'another /64 has its own')
    assert.deepEqual([await hit('203.0.113.9'), await hit('::ffff:203.0.113.9'), await hit('203.0.113.9')], [404, 404, 429],
      'an IPv4-mapped address is its IPv4 address')
    const login = (remoteAddress: string) => t.app.inject({
      method: 'POST', url: '/api/auth/login', payload: { email: 'nobody@example.com', password: 'not the password' }, remoteAddress
    }).then((r) => r.statusCode)
    assert.deepEqual([await login('2001:db8:9:9::1'), await login('2001:db8:9:9::2'), await login('2001:db8:9:9::3')], [401, 401, 429],
      'the auth tier too')
    assert.equal(await login('2001:db8:9:a::1'), 401)
    const blocked = (await t.app.limiter.blockedClients()).map((b) => `${b.tier}/${b.client}`).sort()
    assert.deepEqual(blocked, ['auth/2001:db8:9:9::/64', 'general/2001:db8:1:1::/64', 'general/203.0.113.9'])
  })

  it('X-Forwarded-For is honoured only from a trusted proxy', async (ctx) => {
    const untrusted = await createTestApp(ctx, { GENERAL_RATE_LIMIT_MAX: '2' })
    const trusted = await createTestApp(ctx, { GENERAL_RATE_LIMIT_MAX: '2', TRUST_PROXY: '127.0.0.1' })
    const hit = (t: TestApp, xff: string) => t.app.inject({ method: 'GET', url: '/api/nope', headers: { 'x-forwarded-for': xff } }).then((r) => r.statusCode)
    assert.deepEqual([await hit(untrusted, '1.1.1.1'), await hit(untrusted, '2.2.2.2'), await hit(untrusted, '3.3.3.3')], [404, 404, 429],
      'spoofed addresses do not escape the limit')
    assert.deepEqual([await hit(trusted, '1.1.1.1'), await hit(trusted, '2.2.2.2'), await hit(trusted, '3.3.3.3'), await hit(trusted, '1.1.1.1'), await hit(trusted, '1.1.1.1')],
      [404, 404, 404, 404, 429], 'behind a trusted proxy each client has its own count')
  })

  it('a TRUST_PROXY hop count takes the client from that many hops back, whatever the client prepends', async () => {
    // Fastify trusts nothing for a numeric trustProxy (since 5.12.1): the hop count is Keyward's own.
    const t = await createTestApp({ GENERAL_RATE_LIMIT_MAX: '2', TRUST_PROXY: '1' })
    try {
      const hit = (xff: string) => t.app.inject({ method: 'GET', url: '/api/nope', headers: { 'x-forwarded-for': xff } }).then((r) => r.statusCode)
      assert.deepEqual([await hit('1.1.1.1'), await hit('2.2.2.2'), await hit('3.3.3.3')], [404, 404, 404], 'each address the proxy saw has its own count')
      assert.deepEqual([await hit('9.9.9.1, 1.1.1.1'), await hit('9.9.9.2, 1.1.1.1')], [404, 429], 'a forged earlier hop does not escape the limit')
    } finally {
      await t.close()
    }
  })
})

describe('Redis fault', () => {
  it('keeps limiting from memory when Redis dies, with no 5xx, and shares counts again when it returns', async (ctx) => {
    const port = await freePort()
    let redis = await startRedis(port)
    onScopeEnd(ctx, () => redis.kill('SIGKILL'))
    const t = await createTestApp(ctx, { GENERAL_RATE_LIMIT_MAX: '3', REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_PREFIX: 'kwfault:' })
    const user = await registerUser(t.app)
    const key = (await t.app.inject({ method: 'POST', url: '/api/keys', headers: user.headers, payload: { kind: 'issued', name: 'x' } })).json().secret
    const statuses: number[] = []
    const traffic = async (ip: string, n: number) => {
      const out = []
      for (let i = 0; i < n; i++) {
        const res = await t.app.inject({ method: 'GET', url: '/api/auth/me', headers: user.headers, remoteAddress: ip })
        statuses.push(res.statusCode)
        out.push(res.statusCode)
      }
      return out
    }
    assert.deepEqual(await traffic('192.0.2.1', 2), [200, 200])

    redis.kill('SIGKILL')
    await once(redis, 'exit')
    await until(() => t.app.redis?.status !== 'ready', 5000, 'the app sees Redis gone')
    assert.deepEqual(await traffic('192.0.2.2', 4), [200, 200, 200, 429], 'enforced from memory')
    assert.equal(t.app.limiter.usingFallback, true)
    const verify = await t.app.inject({ method: 'POST', url: '/api/keys/verify', headers: user.headers, payload: { key } })
    statuses.push(verify.statusCode)
    assert.equal(verify.json().code, 'VALID', 'verification goes on')
    const health = await t.app.inject({ method: 'GET', url: '/api/health' })
    assert.equal(health.statusCode, 200)
    assert.equal(health.json().status, 'degraded')
    assert.ok(t.logs.text().includes('Redis unreachable, enforcing from process memory'))

    redis = await startRedis(port)
    await until(() => t.app.redis?.status === 'ready', 5000, () => `the app reconnects to Redis (status ${t.app.redis?.status})`)
    await traffic('192.0.2.3', 1)
    assert.equal(t.app.limiter.usingFallback, false, 'shared counts take over again')
    const shared = new Redis({ port, host: '127.0.0.1' })
    onScopeEnd(ctx, () => shared.disconnect())
    assert.equal(await shared.get('kwfault:rl:general:c:192.0.2.3'), '1', 'the count is in Redis again')
    assert.ok(statuses.every((s) => s < 500), statuses.join(','))
  })
})
