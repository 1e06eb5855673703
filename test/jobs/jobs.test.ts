import assert from 'node:assert/strict'
import { createServer, type IncomingMessage } from 'node:http'
import { once } from 'node:events'
import { after, before, describe, it } from 'node:test'
import { EmbeddedScheduler } from '../../plugins/app/jobs/embedded.ts'
import { runJob } from '../../plugins/app/jobs/runner.ts'
import { findJob } from '../../jobs/schedule.ts'
import { verifySignature } from '../../plugins/app/notifications/webhooks.ts'
import { createInstances, createTestApp, ManualClock, registerUser, type TestApp } from '../helpers/app.ts'
import { redisClient } from '../helpers/redis.ts'
import { onScopeEnd } from '../helpers/scope.ts'
import { until } from '../helpers/until.ts'
import { keyFixture } from '../store/contract/fixtures.ts'

const DAY = 86_400_000
type User = Awaited<ReturnType<typeof registerUser>>

async function run (t: TestApp, name: string) {
  return runJob(findJob(name)!, t.app.jobs.context)
}

async function issue (t: TestApp, user: User, body: Record<string, unknown>) {
  const res = await t.app.inject({ method: 'POST', url: '/api/keys', headers: user.headers, payload: { kind: 'issued', name: 'k', ...body } })
  assert.equal(res.statusCode, 201, res.body)
  return res.json() as { key: { id: string }, secret: string }
}

const notices = async (t: TestApp, user: User) =>
  (await t.app.inject({ method: 'GET', url: '/api/notifications', headers: user.headers })).json().items as Array<{ id: string, type: string, keyId: string }>

describe('maintenance jobs (embedded mode, seeded store)', () => {
  let t: TestApp
  const clock = new ManualClock(Date.UTC(2026, 10, 26, 2, 0, 0))
  before(async () => { t = await createTestApp({ JOBS_EMBEDDED: 'false' }, { clock }) })
  after(async () => { await t.close() })

  it('key-expiration marks expired keys, notifies expiring and rotation-due keys, and is idempotent', async () => {
    const user = await registerUser(t.app)
    const gone = await issue(t, user, { expiresAt: new Date(clock.now() + 1000).toISOString() })
    const soon = await issue(t, user, { expiresAt: new Date(clock.now() + 3 * DAY).toISOString() })
    const due = await issue(t, user, { rotationIntervalDays: 1 })
    await t.app.inject({ method: 'GET', url: '/api/keys', headers: user.headers })
    clock.advance(DAY + 1000)
    // A re-login: the access token of the seeding request has expired on the moved clock.
    const login = await t.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: user.email, password: user.password } })
    user.headers.authorization = `Bearer ${login.json().accessToken}`

    const first = await run(t, 'key-expiration')
    assert.equal(first.expired, 1)
    assert.equal((await t.app.inject({ method: 'GET', url: `/api/keys/${gone.key.id}`, headers: user.headers })).json().status, 'expired')
    assert.equal((await t.app.inject({ method: 'GET', url: '/api/keys?status=expired', headers: user.headers })).json().items.length, 1, 'lists follow at once')
    const types = (await notices(t, user)).map((n) => `${n.type}:${n.keyId}`).sort()
    assert.deepEqual(types, [`expired:${gone.key.id}`, `expiring_soon:${soon.key.id}`, `rotation_due:${due.key.id}`].sort())

    const again = await Promise.all([run(t, 'key-expiration'), run(t, 'key-expiration')])
    assert.deepEqual(again.map((r) => r.expired), [0, 0])
    assert.equal((await notices(t, user)).length, 3, 'running twice, even concurrently, notifies nobody twice')
    const runs = await t.app.store.jobRuns('key-expiration', 10)
    assert.equal(runs.length, 3)
    assert.ok(runs.every((r) => r.ok))
  })

  it('usage-rollup folds days and raises quota notices at 80% and 100%, once', async () => {
    const user = await registerUser(t.app)
    const key = await issue(t, user, { monthlyLimit: 10 })
    const record = (count: number) => t.app.inject({ method: 'POST', url: `/api/keys/${key.key.id}/usage`, headers: user.headers, payload: { count } })
    await record(8)
    assert.equal((await run(t, 'usage-rollup')).notified, 1)
    assert.deepEqual((await notices(t, user)).map((n) => n.type), ['quota_80'])
    await record(2)
    await run(t, 'usage-rollup')
    await run(t, 'usage-rollup')
    assert.deepEqual((await notices(t, user)).map((n) => n.type), ['quota_100', 'quota_80'])
    const day = clock.now() - (clock.now() % DAY)
    assert.deepEqual(await t.app.store.usageDaily(user.user.id, key.key.id, day, day + DAY), [{ hour: day, units: 10, requests: 10 }])
  })

  it('data-cleanup purges revoked keys past retention and expired sessions', async () => {
    const user = await registerUser(t.app)
    const key = await issue(t, user, {})
    await t.app.inject({ method: 'DELETE', url: `/api/keys/${key.key.id}`, headers: user.headers })
    await t.app.store.updateKey(user.user.id, key.key.id, { status: 'revoked', revokedAt: clock.now() - 31 * DAY })
    await t.app.store.createSession({ userId: user.user.id, expiresAt: clock.now() - 1, userAgent: null, ip: null }, 'rt-cleanup-' + user.user.id)
    const result = await run(t, 'data-cleanup')
    assert.ok((result.revokedKeys as number) >= 1)
    assert.ok((result.sessions as number) >= 1)
    assert.equal(await t.app.store.getKey(user.user.id, key.key.id), null)
    assert.equal((await run(t, 'data-cleanup')).revokedKeys, 0, 'nothing left to do the second time')
  })

  it('data-cleanup finishes the purge of a large account marked deleted, in bounded batches', async () => {
    const user = await registerUser(t.app)
    const target = await issue(t, user, {})
    const root = await issue(t, user, { scopes: ['keyward:verify'] })
    const verify = () => t.app.inject({ method: 'POST', url: '/api/keys/verify', headers: { authorization: `Bearer ${root.secret}` }, payload: { key: target.secret } })
    assert.equal((await verify()).json().code, 'VALID')
    const hour = clock.now() - (clock.now() % 3_600_000)
    for (let i = 0; i < 1500; i++) {
      const key = keyFixture()
      await t.app.store.createKey(user.user.id, key, { hash: key.hash, start: key.start, ciphertext: null })
      await t.app.store.recordUsage([{ ownerId: user.user.id, keyId: key.id, hour, units: 1, requests: 1, lastUsedAt: hour }])
    }
    // As a deleteAccount whose purge was cut short leaves it: marked, its data all there.
    assert.equal(await t.app.store.markUserDeleted(user.user.id, clock.now()), true)
    assert.equal((await t.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: user.email, password: user.password } })).statusCode, 401)
    await new Promise((resolve) => setTimeout(resolve, 1100)) // the verify caller cache's bound, with no deletion broadcast
    assert.equal((await verify()).statusCode, 401, 'its keys stop verifying before any purge')
    assert.ok(await t.app.store.getKey(user.user.id, target.key.id))

    const result = await run(t, 'data-cleanup')
    assert.ok((result.deletedAccountRows as number) >= 4 * 1500, `purged ${String(result.deletedAccountRows)} rows`)
    assert.deepEqual(await t.app.store.listDeletedUsers(100), [])
    assert.equal(await t.app.store.getKey(user.user.id, target.key.id), null)
    assert.deepEqual(await t.app.store.monthlyUsage(user.user.id, Date.UTC(2026, 10, 1)), [])
    assert.equal((await run(t, 'data-cleanup')).deletedAccountRows, 0, 'nothing left to do the second time')
  })

  it('stats-report stores one snapshot per hour', async () => {
    await run(t, 'stats-report')
    await run(t, 'stats-report')
    const hour = clock.now() - (clock.now() % 3_600_000)
    const snapshots = await t.app.store.statsSnapshots(hour, hour + 1, 10)
    assert.equal(snapshots.length, 1)
    assert.ok((snapshots[0]!.data.users as number) >= 1)
  })

  it('notifications: listed newest first, marked read, owner-scoped, bad cursors refused', async () => {
    const user = await registerUser(t.app)
    const other = await registerUser(t.app)
    const n1 = await t.app.notifier.notify(user.user.id, { type: 'expired', keyId: null, title: 'one', detail: {}, dedupeKey: 'a' })
    const n2 = await t.app.notifier.notify(user.user.id, { type: 'expired', keyId: null, title: 'two', detail: {}, dedupeKey: 'b' })
    const page = (await t.app.inject({ method: 'GET', url: '/api/notifications?limit=1', headers: user.headers })).json()
    assert.deepEqual(page.items.map((n: { id: string }) => n.id), [n2!.id])
    const next = (await t.app.inject({ method: 'GET', url: `/api/notifications?limit=1&cursor=${page.nextCursor}`, headers: user.headers })).json()
    assert.deepEqual(next.items.map((n: { id: string }) => n.id), [n1!.id])
    assert.equal((await t.app.inject({ method: 'POST', url: `/api/notifications/${n1!.id}/read`, headers: other.headers })).statusCode, 404)
    const read = await t.app.inject({ method: 'POST', url: `/api/notifications/${n1!.id}/read`, headers: user.headers })
    assert.ok(read.json().readAt)
    assert.deepEqual((await t.app.inject({ method: 'GET', url: '/api/notifications?unread=true', headers: user.headers })).json().items.map((n: { id: string }) => n.id), [n2!.id])
    assert.equal((await t.app.inject({ method: 'GET', url: '/api/notifications?cursor=nope', headers: user.headers })).statusCode, 400)
    assert.equal((await t.app.inject({ method: 'GET', url: '/api/notifications?limit=500', headers: user.headers })).statusCode, 400)
  })

  it('the admin job report shows each schedule, next and last run', async () => {
    const admin = await registerUser(t.app)
    await t.app.auth.setRole(admin.email, 'admin')
    const report = (await t.app.inject({ method: 'GET', url: '/api/system/jobs', headers: admin.headers })).json()
    assert.equal(report.mode, 'worker', 'JOBS_EMBEDDED=false: no scheduler in this process')
    const expiration = report.jobs.find((j: { name: string }) => j.name === 'key-expiration')
    assert.equal(expiration.schedule, '0 2 * * *')
    assert.ok(Date.parse(expiration.nextRunAt) > clock.now())
    assert.equal(expiration.lastRun.ok, true)
    assert.equal(expiration.recentFailures, 0)
  })
})

describe('the embedded scheduler', () => {
  it('runs in one process at a time (a store lease), and another takes over', async (ctx) => {
    const t = await createTestApp(ctx, { JOBS_EMBEDDED: 'false' })
    const a = new EmbeddedScheduler(t.app.jobs.context, [])
    const b = new EmbeddedScheduler(t.app.jobs.context, [])
    await a.tick()
    await b.tick()
    assert.deepEqual([a.leader, b.leader], [true, false])
    await a.stop()
    await b.tick()
    assert.equal(b.leader, true, 'the lease is released on stop')
    await b.stop()
  })

  it('runs a due job on its tick and waits for it on stop', async (ctx) => {
    const clock = new ManualClock(Date.UTC(2026, 10, 26, 0, 59, 59))
    const t = await createTestApp(ctx, { JOBS_EMBEDDED: 'false' }, { clock })
    const stats = findJob('stats-report')!
    const scheduler = new EmbeddedScheduler(t.app.jobs.context, [stats])
    scheduler.start()
    await scheduler.tick()
    assert.equal((await t.app.store.jobRuns('stats-report', 5)).length, 0, 'not due yet')
    clock.advance(2000)
    await scheduler.tick()
    assert.equal((await t.app.store.jobRuns('stats-report', 5)).length, 1)
    await scheduler.tick()
    assert.equal((await t.app.store.jobRuns('stats-report', 5)).length, 1, 'once per tick of the schedule')
    await scheduler.stop()
  })
})

describe('webhooks', () => {
  let received: Array<{ body: string, signature: string }> = []
  let failNext = 0
  const server = createServer((req: IncomingMessage, res) => {
    let body = ''
    req.on('data', (c) => { body += c })
    req.on('end', () => {
      received.push({ body, signature: String(req.headers['keyward-signature']) })
      res.statusCode = failNext-- > 0 ? 500 : 200
      res.end()
    })
  })
  let url = ''
  before(async () => {
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`
  })
  after(async () => { server.close() })

  it('refuses loopback, link-local and private addresses when they are set', async (ctx) => {
    const t = await createTestApp(ctx, { JOBS_EMBEDDED: 'false' })
    const user = await registerUser(t.app)
    for (const target of ['http://127.0.0.1/x', 'http://localhost:8080/', 'http://10.1.2.3/', 'http://169.254.169.254/latest', 'http://[::1]/', 'http://192.168.0.10/', 'ftp://example.com/', 'http://user:pw@example.com/']) {
      const res = await t.app.inject({ method: 'PUT', url: '/api/auth/me/webhook', headers: user.headers, payload: { url: target } })
      assert.equal(res.statusCode, 400, target)
      assert.equal(res.json().code, 'WEBHOOK_URL_FORBIDDEN', target)
    }
    assert.equal((await t.app.inject({ method: 'GET', url: '/api/auth/me/webhook', headers: user.headers })).json().configured, false)
  })

  it('refuses at delivery a stored URL that the set-time check refuses (localhost.)', async (ctx) => {
    const t = await createTestApp(ctx, { JOBS_EMBEDDED: 'false' })
    const user = await registerUser(t.app)
    received = []
    // Stored directly, past the route's check. (Names that resolve to private addresses: test/plugins/webhooks.test.ts.)
    const port = new URL(url).port
    await t.app.store.setWebhook(user.user.id, { url: `http://localhost.:${port}/hook`, secret: t.app.notifications.secrets.seal(user.user.id, 'whsec_rebinding_test_secret') })
    await t.app.notifier.notify(user.user.id, { type: 'expired', keyId: null, title: 'x', detail: {}, dedupeKey: 'rebind' })
    const result = await t.app.notifier.deliverDue()
    assert.equal(result.delivered, 0)
    assert.deepEqual(received, [], 'nothing reached the loopback receiver')
  })

  it('signs deliveries, retries a failing receiver with backoff, and delivers each event once', async (ctx) => {
    const clock = new ManualClock()
    const t = await createTestApp(ctx, { JOBS_EMBEDDED: 'false', WEBHOOK_ALLOW_PRIVATE: 'true' }, { clock })
    const user = await registerUser(t.app)
    received = []
    failNext = 1
    const set = await t.app.inject({ method: 'PUT', url: '/api/auth/me/webhook', headers: user.headers, payload: { url } })
    assert.equal(set.statusCode, 200)
    const secret = set.json().secret as string
    assert.match(secret, /^whsec_/)
    const shown = (await t.app.inject({ method: 'GET', url: '/api/auth/me/webhook', headers: user.headers })).json()
    assert.deepEqual([shown.configured, shown.url, shown.secret], [true, url, undefined], 'the secret is shown once')
    assert.ok(!JSON.stringify(await t.app.store.getWebhook(user.user.id)).includes(secret), 'stored sealed')

    const n = await t.app.notifier.notify(user.user.id, { type: 'quota_80', keyId: 'k1', title: 'Quota', detail: { used: 8 }, dedupeKey: 'q' })
    assert.equal(await t.app.notifier.notify(user.user.id, { type: 'quota_80', keyId: 'k1', title: 'Quota', detail: { used: 8 }, dedupeKey: 'q' }), null)
    assert.deepEqual(await t.app.notifier.deliverDue(), { delivered: 0, retry: 1, failed: 0 })
    assert.deepEqual(await t.app.notifier.deliverDue(), { delivered: 0, retry: 0, failed: 0 }, 'not due before the backoff')
    clock.advance(30_000)
    assert.deepEqual(await t.app.notifier.deliverDue(), { delivered: 1, retry: 0, failed: 0 })
    assert.deepEqual(await t.app.notifier.deliverDue(), { delivered: 0, retry: 0, failed: 0 }, 'delivered once')
    assert.equal(received.length, 2)
    const last = received[1]!
    assert.equal(JSON.parse(last.body).id, n!.id)
    assert.ok(verifySignature(secret, last.body, last.signature, Math.floor(Date.now() / 1000)), 'the receiver checks the signature')
    assert.ok(!verifySignature('whsec_wrong', last.body, last.signature, Math.floor(Date.now() / 1000)))
    assert.ok(!verifySignature(secret, last.body + ' ', last.signature, Math.floor(Date.now() / 1000)))
  })
})

describe('cache-cleanup on the real Redis', () => {
  it('removes cache entries of old generations with SCAN and keeps current ones', async (ctx) => {
    const { apps: [t], prefix } = await createInstances(ctx, 1, { JOBS_EMBEDDED: 'false' })
    const redis = redisClient()
    onScopeEnd(ctx, () => redis.disconnect())
    const user = await registerUser(t.app)
    await t.app.inject({ method: 'GET', url: '/api/keys', headers: user.headers })
    await issue(t, user, {})
    await t.app.inject({ method: 'GET', url: '/api/keys', headers: user.headers })
    // The L2 write follows the answer (it is not awaited on the request path).
    await until(async () => (await redis.keys(`${prefix}cache:keys:list:*`)).length === 2, 2000, 'one list cached per generation')
    const result = await run(t, 'cache-cleanup')
    assert.equal(result.removed, 1)
    const afterKeys = await redis.keys(`${prefix}cache:keys:list:*`)
    assert.equal(afterKeys.length, 1)
  })
})
