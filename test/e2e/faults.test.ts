import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { Queue, QueueEvents } from 'bullmq'
import Database from 'libsql'
import { MAINTENANCE_QUEUE } from '../../jobs/queue.ts'
import { AuditChain } from '../../plugins/app/store/audit-chain.ts'
import { createSqliteStore } from '../../plugins/app/store/sqlite/index.ts'
import { TEST_SECRETS } from '../helpers/app.ts'
import { startRedis } from '../helpers/redis.ts'
import { freePort, startServer, type RunningServer } from '../helpers/server.ts'
import { onScopeEnd } from '../helpers/scope.ts'
import { tempDir } from '../helpers/tmp.ts'
import { SQLITE_ONLY } from '../helpers/store-env.ts'
import { until } from '../helpers/until.ts'

// Suite 2 of the reliability issue: faults while traffic runs. The service keeps answering
// (degraded where it must, never past its timeouts) and loses no acknowledged write.

const CLIENT_TIMEOUT_MS = 10_000
const json = { 'content-type': 'application/json' }

interface PhaseStats {
  requests: number
  statuses: Map<string, number>
  broken: string[]
  maxMs: number
  verifyMs: number[]
}

function newStats (): PhaseStats {
  return { requests: 0, statuses: new Map(), broken: [], maxMs: 0, verifyMs: [] }
}

function p99 (values: number[]) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] ?? 0
}

function summary (stats: PhaseStats) {
  const statuses = [...stats.statuses].map(([k, n]) => `${k}×${n}`).join(' ')
  return `${stats.requests} requests (${statuses}), slowest ${stats.maxMs} ms, verify p99 ${p99(stats.verifyMs).toFixed(1)} ms`
}

/**
 * Mixed traffic from four lanes: verifications of a few issued keys (counted per key, to check
 * metering afterwards), key creations, usage records and key listings. Every answer is recorded
 * against the current phase; only answers saying the write happened count as acknowledged.
 */
class Traffic {
  phase = newStats()
  readonly created: string[] = []
  readonly verified = new Map<string, number>()
  recordedUsage = 0
  private stopped = false
  private lanes: Promise<void>[] = []

  constructor (private readonly url: string, private readonly token: string, private readonly keys: Array<{ id: string, secret: string }>, private readonly usageKey: string) {}

  start () {
    this.lanes = [0, 1, 2, 3].map((lane) => this.lane(lane))
  }

  /** Ends the current phase and starts a new one; returns the finished phase. */
  next (): PhaseStats {
    const done = this.phase
    this.phase = newStats()
    return done
  }

  async stop () {
    this.stopped = true
    await Promise.all(this.lanes)
  }

  private async lane (lane: number) {
    const auth = { ...json, authorization: `Bearer ${this.token}` }
    for (let i = 0; !this.stopped; i++) {
      const op = i % 10
      const key = this.keys[(lane + i) % this.keys.length] as { id: string, secret: string }
      let kind: string
      let request: [string, RequestInit]
      if (op < 6) {
        kind = 'verify'
        request = [`${this.url}/api/keys/verify`, { method: 'POST', headers: auth, body: JSON.stringify({ key: key.secret }) }]
      } else if (op === 6) {
        kind = 'create'
        request = [`${this.url}/api/keys`, { method: 'POST', headers: auth, body: JSON.stringify({ kind: 'issued', name: `fault ${lane}.${i}` }) }]
      } else if (op === 7) {
        kind = 'usage'
        request = [`${this.url}/api/keys/${this.usageKey}/usage`, { method: 'POST', headers: auth, body: JSON.stringify({ count: 1 }) }]
      } else {
        kind = 'list'
        request = [`${this.url}/api/keys?limit=20`, { headers: auth }]
      }
      const stats = this.phase
      const started = performance.now()
      try {
        const res = await fetch(request[0], { ...request[1], signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS) })
        const body = (await res.json()) as Record<string, any>
        const ms = performance.now() - started
        stats.requests++
        stats.maxMs = Math.max(stats.maxMs, Math.round(ms))
        const label = `${kind} ${res.status}`
        stats.statuses.set(label, (stats.statuses.get(label) ?? 0) + 1)
        if (kind === 'verify') {
          stats.verifyMs.push(ms)
          if (res.status === 200 && body.valid === true) this.verified.set(key.id, (this.verified.get(key.id) ?? 0) + 1)
        } else if (kind === 'create' && res.status === 201) {
          this.created.push(body.key.id)
        } else if (kind === 'usage' && res.status === 201) {
          this.recordedUsage++
        }
        if (res.status >= 500) assert.equal(typeof body.code, 'string', 'a 5xx still has the one error shape')
      } catch (err) {
        stats.requests++
        stats.broken.push(`${kind}: ${(err as Error).name} ${(err as Error).message}`)
      }
    }
  }
}

/** Statuses that are not 2xx, by label. */
function failures (stats: PhaseStats) {
  return [...stats.statuses].filter(([label]) => !/ 2\d\d$/.test(label))
}

/** Every request of each phase was answered with a 2xx, and traffic really ran. */
function assertAllAnswered (phases: Record<string, PhaseStats>) {
  for (const [name, stats] of Object.entries(phases)) {
    assert.deepEqual(stats.broken, [], `${name}: ${summary(stats)}`)
    assert.deepEqual(failures(stats), [], `${name}: ${summary(stats)}`)
    assert.ok(stats.requests > 50, `${name}: traffic ran (${stats.requests})`)
  }
}

/** Waits until health reports Redis answering again ('ok'), at most 10 s. */
async function healthOnceRedisAnswers (url: string, message: string) {
  let status = ''
  await until(async () => {
    status = ((await (await fetch(`${url}/api/health`)).json()) as { status: string }).status
    return status === 'ok'
  }, 10_000, () => `${message} (health still ${status})`, 250)
}

describe('faults under traffic', { timeout: 240_000 }, () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>
  let redisPort: number
  let redis: ChildProcess
  let server: RunningServer
  let traffic: Traffic
  let env: Record<string, string>
  let ownerId: string
  let usageKeyId: string
  let token: string
  const survived: string[] = []

  before(async () => {
    tmp = await tempDir('faults')
    redisPort = await freePort()
    redis = await startRedis(redisPort)
    env = {
      DATA_DIR: tmp.dir,
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      REDIS_PREFIX: 'kwfaults:',
      GENERAL_RATE_LIMIT_MAX: '10000000',
      KEY_CREATE_RATE_LIMIT_MAX: '1000000',
      HEAVY_RATE_LIMIT_MAX: '1000000',
      SHUTDOWN_TIMEOUT_MS: '10000'
    }
    server = await startServer(env)
    const register = await fetch(`${server.url}/api/auth/register`, { method: 'POST', headers: json, body: JSON.stringify({ email: 'faults@example.com', password: 'faults password 1' }) })
    assert.equal(register.status, 201)
    const registered = (await register.json()) as { accessToken: string, user: { id: string } }
    token = registered.accessToken
    ownerId = registered.user.id
    const auth = { ...json, authorization: `Bearer ${token}` }
    const keys = []
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${server.url}/api/keys`, { method: 'POST', headers: auth, body: JSON.stringify({ kind: 'issued', name: `verified ${i}` }) })
      assert.equal(res.status, 201)
      const body = (await res.json()) as { key: { id: string }, secret: string }
      keys.push({ id: body.key.id, secret: body.secret })
    }
    usageKeyId = (keys.pop() as { id: string }).id
    traffic = new Traffic(server.url, token, keys, usageKeyId)
    traffic.start()
    await sleep(1500) // traffic warms up
    const warm = traffic.next()
    assert.deepEqual(failures(warm), [], summary(warm))
    assert.deepEqual(warm.broken, [])
  })

  after(async () => {
    await traffic?.stop()
    await server?.stop('SIGKILL')
    redis?.kill('SIGKILL')
    await tmp?.remove()
  })

  it('Redis killed and restarted: every request is answered, none with a 5xx; health says degraded, then ok', async () => {
    redis.kill('SIGKILL')
    await once(redis, 'exit')
    await sleep(3000) // traffic runs with Redis down
    const down = traffic.next()
    const health = await fetch(`${server.url}/api/health`)
    assert.equal(health.status, 200)
    assert.equal(((await health.json()) as { status: string }).status, 'degraded')

    redis = await startRedis(redisPort)
    await healthOnceRedisAnswers(server.url, 'Redis is used again once it is back')
    await sleep(1500) // traffic runs with Redis back
    const back = traffic.next()
    assertAllAnswered({ 'Redis down': down, 'Redis back': back })
    survived.push(`Redis kill -9 + restart (down: ${summary(down)}; back: ${summary(back)})`)
  })

  it('Redis frozen (SIGSTOP: connections accepted, nothing answered): requests fall back within the Redis command timeout instead of hanging', async () => {
    redis.kill('SIGSTOP')
    try {
      await sleep(4000) // traffic runs against the frozen Redis
    } finally {
      redis.kill('SIGCONT')
    }
    const frozen = traffic.next()
    await healthOnceRedisAnswers(server.url, 'Redis is used again once it answers')
    await sleep(1500) // traffic runs with Redis thawed
    const thawed = traffic.next()
    assertAllAnswered({ 'Redis frozen': frozen, 'Redis thawed': thawed })
    assert.ok(frozen.maxMs < 2000, `no request waited long on the frozen Redis: ${summary(frozen)}`)
    survived.push(`Redis frozen 4 s with SIGSTOP (frozen: ${summary(frozen)}; thawed: ${summary(thawed)})`)
  })

  it('SQLite held busy by another connection for longer than the busy timeout: reads and verification go on, writes wait or get a 503, nothing hangs', { skip: SQLITE_ONLY }, async () => {
    const other = new Database(join(tmp.dir, 'keyward.db'))
    other.exec('BEGIN IMMEDIATE')
    try {
      await sleep(1000) // traffic meets the lock
      const refused = await fetch(`${server.url}/api/keys`, { method: 'POST', headers: { ...json, authorization: `Bearer ${token}` }, body: JSON.stringify({ kind: 'issued', name: 'while busy' }) })
      assert.equal(refused.status, 503)
      assert.equal(refused.headers.get('retry-after'), '1')
      assert.equal(((await refused.json()) as { code: string }).code, 'STORE_BUSY')
      await sleep(6000) // the lock outlasts the busy timeout many times over
    } finally {
      other.exec('ROLLBACK')
      other.close()
    }
    const busy = traffic.next()
    await sleep(1500) // traffic runs once the lock is gone
    const after = traffic.next()
    assert.deepEqual(busy.broken, [], summary(busy))
    const unexpected = failures(busy).filter(([label]) => !/^(create|usage) 503$/.test(label))
    assert.deepEqual(unexpected, [], `only writes may be refused while the store is busy: ${summary(busy)}`)
    assert.ok(busy.maxMs < 3000, `no answer waited long for the lock (slowest ${busy.maxMs} ms; busy timeout 250 ms)`)
    assert.ok((busy.statuses.get('verify 200') ?? 0) > 0 && (busy.statuses.get('list 200') ?? 0) > 0, `reads and verification went on: ${summary(busy)}`)
    assert.deepEqual(after.broken, [], summary(after))
    assert.deepEqual(failures(after), [], `writes succeed again once the lock is gone: ${summary(after)}`)
    survived.push(`SQLite write lock held 7 s (busy: ${summary(busy)}; after: ${summary(after)})`)
  })

  it('the jobs worker stopped while jobs run: it finishes what it holds and exits 0; a new worker takes the rest', async (ctx) => {
    const connection = { host: '127.0.0.1', port: redisPort }
    const prefix = 'kwfaults:bull'
    const queue = new Queue(MAINTENANCE_QUEUE, { connection, prefix })
    const events = new QueueEvents(MAINTENANCE_QUEUE, { connection, prefix })
    onScopeEnd(ctx, async () => {
      await events.close()
      await queue.obliterate({ force: true }).catch(() => {})
      await queue.close()
    })
    await events.waitUntilReady()
    const first = await startServer({ ...env, JOBS_CONCURRENCY: '1' }, 'worker.ts', /worker ready()/)
    onScopeEnd(ctx, () => first.stop('SIGKILL'))
    const names = ['usage-rollup', 'stats-report', 'cache-cleanup', 'key-expiration', 'data-cleanup', 'usage-rollup', 'stats-report']
    const jobs = await queue.addBulk(names.map((name) => ({ name, data: {} })))
    await once(events, 'active')
    const code = await first.stop('SIGTERM')
    assert.equal(code, 0, first.output.join('\n'))
    const states = await Promise.all(jobs.map((job) => job.getState()))
    assert.ok(!states.includes('failed'), states.join(','))
    assert.ok(!states.includes('active'), `no job is left active (stalled) by the stop: ${states.join(',')}`)
    const doneByFirst = states.filter((s) => s === 'completed').length
    assert.ok(doneByFirst >= 1, 'the job running at the stop was finished')

    const second = await startServer({ ...env, JOBS_CONCURRENCY: '1' }, 'worker.ts', /worker ready()/)
    onScopeEnd(ctx, () => second.stop('SIGKILL'))
    let now: string[] = []
    await until(async () => {
      now = await Promise.all(jobs.map((job) => queue.getJobState(job.id as string)))
      return now.every((s) => s === 'completed')
    }, 20_000, () => `the new worker completes the rest: ${now.join(',')}`, 250)
    assert.equal(await second.stop('SIGTERM'), 0)
    const during = traffic.next()
    assert.deepEqual(during.broken, [], summary(during))
    assert.deepEqual(failures(during), [], summary(during))
    survived.push(`jobs worker SIGTERM with ${names.length} jobs queued (${doneByFirst} finished by it, the rest by its replacement; API meanwhile: ${summary(during)})`)
  })

  it('afterwards, every acknowledged write is in the store and verification usage is metered in full', async () => {
    await traffic.stop()
    const code = await server.stop('SIGTERM')
    assert.equal(code, 0, 'a graceful stop flushes the meter')
    const store = createSqliteStore({ dataDir: tmp.dir, auditChain: new AuditChain(TEST_SECRETS.KEY_HASH_SECRET) })
    try {
      assert.equal(store.integrityCheck(), 'ok')
      for (const id of traffic.created) assert.ok(await store.getKey(ownerId, id), `acknowledged key ${id} is in the store`)
      const metered = async (id: string) => (await store.usageSeries(ownerId, id, 0, Date.now() + 3_600_000)).reduce((sum, p) => sum + p.requests, 0)
      let verifications = 0
      for (const [id, count] of traffic.verified) {
        const requests = await metered(id)
        assert.ok(requests >= count, `key ${id}: ${requests} metered of ${count} valid verifications`)
        verifications += count
      }
      assert.ok(await metered(usageKeyId) >= traffic.recordedUsage, 'every acknowledged usage record is in the store')
      console.log(`faults: ${survived.length} faults survived under traffic:\n  - ${survived.join('\n  - ')}\n  afterwards: ${traffic.created.length} acknowledged keys, ${traffic.recordedUsage} usage records, ${verifications} valid verifications all in the store; integrity ok`)
    } finally {
      await store.close()
    }
  })
})
