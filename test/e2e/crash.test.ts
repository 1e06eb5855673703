import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { AuditChain } from '../../plugins/app/store/audit-chain.ts'
import { createSqliteStore } from '../../plugins/app/store/sqlite/index.ts'
import { TEST_SECRETS } from '../helpers/app.ts'
import { onScopeEnd } from '../helpers/scope.ts'
import { freePort, requestOnce, startServer } from '../helpers/server.ts'
import { testDir } from '../helpers/tmp.ts'
import { until } from '../helpers/until.ts'

// Suite 3 of the reliability issue: kill -9 in the middle of a stream of writes, then prove that
// every write the service acknowledged is still there.

const EMAIL = 'crash@example.com'
const PASSWORD = 'crash test password'

/** A JSON request on a connection of its own (so under the cluster the stream reaches every worker). */
async function call (url: string, method: string, path: string, body?: unknown, token?: string): Promise<{ status: number, json: any }> {
  const headers: Record<string, string> = {}
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (token !== undefined) headers.authorization = `Bearer ${token}`
  const res = await requestOnce(`${url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  return { status: res.status, json: res.body === '' ? null : JSON.parse(res.body) }
}

interface Acknowledged {
  created: string[]
  rotated: Map<string, number>
  usage: number
  failed: number
  /** Answers of GET /api/system/info per worker pid, when the stream probes which worker serves. */
  servedBy: Map<number, number>
}

/**
 * Three lanes of key creations, rotations and usage records until `control.stop`. Only answers
 * that say the write happened are counted; a broken connection is not an acknowledgement. Under
 * the cluster (`cluster: true`) every fourth request asks which worker answers, and a broken
 * request is retried by the next one instead of ending the lane.
 */
function stream (url: string, token: string, control: { stop: boolean }, cluster: boolean) {
  const ack: Acknowledged = { created: [], rotated: new Map(), usage: 0, failed: 0, servedBy: new Map() }
  const lane = async (n: number) => {
    for (let i = 0; !control.stop; i++) {
      try {
        if (cluster && i % 4 === 3) {
          const res = await call(url, 'GET', '/api/system/info', undefined, token)
          if (res.status === 200) ack.servedBy.set(res.json.pid, (ack.servedBy.get(res.json.pid) ?? 0) + 1)
        } else if (i % 3 === 0 || ack.created.length === 0) {
          const res = await call(url, 'POST', '/api/keys', { kind: 'issued', name: `lane ${n} #${i}` }, token)
          if (res.status === 201) ack.created.push(res.json.key.id)
        } else if (i % 3 === 1) {
          const id = ack.created[ack.created.length - 1] as string
          const res = await call(url, 'POST', `/api/keys/${id}/rotate`, {}, token)
          if (res.status === 200) ack.rotated.set(id, Math.max(ack.rotated.get(id) ?? 0, res.json.key.version))
        } else {
          const res = await call(url, 'POST', `/api/keys/${ack.created[0]}/usage`, { count: 1 }, token)
          if (res.status === 201) ack.usage++
        }
      } catch {
        ack.failed++
        if (!cluster) return // the only process is gone
        await sleep(20) // a worker died under this request; the others go on serving
      }
    }
  }
  return { ack, done: Promise.all([lane(1), lane(2), lane(3)]) }
}

/**
 * The pids of the workers answering. With SCHED_NONE the kernel hands a lone connection to
 * whichever worker is idle, so requests go in concurrent bursts to reach them all.
 */
async function workerPids (url: string, token: string) {
  const pids = new Set<number>()
  for (let burst = 0; burst < 10 && pids.size < 2; burst++) {
    const answers = await Promise.all(Array.from({ length: 16 }, () => call(url, 'GET', '/api/system/info', undefined, token)))
    for (const answer of answers) if (answer.status === 200) pids.add(answer.json.pid)
  }
  return pids
}

/** A process's state letter from /proc (Z: dead, not yet reaped; D: in uninterruptible I/O), or 'gone'. */
function processState (pid: number) {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[0] ?? 'unknown'
  } catch {
    return 'gone'
  }
}

/** Restarts a single process on the same data and checks every acknowledged write. */
async function verifyAfterRestart (env: Record<string, string>, ack: Acknowledged) {
  const server = await startServer(env)
  try {
    const login = await call(server.url, 'POST', '/api/auth/login', { email: EMAIL, password: PASSWORD })
    assert.equal(login.status, 200)
    const token = login.json.accessToken as string
    for (const id of ack.created) {
      const res = await call(server.url, 'GET', `/api/keys/${id}`, undefined, token)
      assert.equal(res.status, 200, `acknowledged key ${id} is there`)
      assert.ok(res.json.version >= (ack.rotated.get(id) ?? 1), `key ${id} keeps its acknowledged rotation`)
    }
    const summary = await call(server.url, 'GET', '/api/usage/summary', undefined, token)
    assert.ok(summary.json.total.requests >= ack.usage, `${summary.json.total.requests} usage records kept of ${ack.usage} acknowledged`)
    const chain = await call(server.url, 'GET', '/api/audit/verify', undefined, token)
    assert.equal(chain.json.valid, true)
    assert.ok(chain.json.events >= ack.created.length + ack.rotated.size)
    return chain.json.events as number
  } finally {
    await server.stop('SIGTERM')
  }
}

async function integrity (dataDir: string) {
  const store = createSqliteStore({ dataDir, auditChain: new AuditChain(TEST_SECRETS.KEY_HASH_SECRET) })
  try {
    assert.equal(store.integrityCheck(), 'ok')
  } finally {
    await store.close()
  }
}

describe('crash durability', { timeout: 300_000 }, () => {
  it('kill -9 of the server mid-stream loses no acknowledged write: keys, rotations and usage survive, the audit chain verifies, the file is sound', async (ctx) => {
    const dataDir = await testDir(ctx, 'crash')
    const env = { DATA_DIR: dataDir, GENERAL_RATE_LIMIT_MAX: '10000000', KEY_CREATE_RATE_LIMIT_MAX: '1000000', HEAVY_RATE_LIMIT_MAX: '1000000' }
    const server = await startServer(env)
    onScopeEnd(ctx, () => server.stop('SIGKILL'))
    const register = await call(server.url, 'POST', '/api/auth/register', { email: EMAIL, password: PASSWORD })
    assert.equal(register.status, 201)
    const control = { stop: false }
    const { ack, done } = stream(server.url, register.json.accessToken, control, false)
    // The stream runs until it has a few dozen acknowledged writes, however busy the machine is.
    await until(() => ack.created.length > 20 && ack.usage > 5, 60_000, () => `the stream gets going (${ack.created.length} keys, ${ack.usage} usage records)`)
    server.proc.kill('SIGKILL')
    control.stop = true
    await done
    await server.stop('SIGKILL')
    assert.ok(ack.created.length > 10, `${ack.created.length} keys acknowledged before the crash`)

    const events = await verifyAfterRestart(env, ack)
    await integrity(dataDir)
    console.log(`crash durability (server): ${ack.created.length} keys, ${ack.rotated.size} rotations, ${ack.usage} usage records acknowledged before kill -9; all present after restart; audit chain of ${events} events verifies; integrity ok`)
  })

  it('kill -9 of one cluster worker mid-stream loses no acknowledged write; the cluster keeps serving and replaces it', async (ctx) => {
    const dataDir = await testDir(ctx, 'crash-cluster')
    const env = { DATA_DIR: dataDir, GENERAL_RATE_LIMIT_MAX: '10000000', KEY_CREATE_RATE_LIMIT_MAX: '1000000', HEAVY_RATE_LIMIT_MAX: '1000000', AUTH_RATE_LIMIT_MAX: '1000', ADMIN_EMAILS: EMAIL }
    const port = await freePort()
    const cluster = await startServer({ ...env, PORT: String(port), WORKERS: '2', SHUTDOWN_TIMEOUT_MS: '5000' }, 'cluster.ts', /cluster ready/)
    onScopeEnd(ctx, () => cluster.stop('SIGKILL'))
    const url = `http://127.0.0.1:${port}`
    const register = await call(url, 'POST', '/api/auth/register', { email: EMAIL, password: PASSWORD })
    assert.equal(register.status, 201)
    const token = register.json.accessToken as string
    const pids = await workerPids(url, token)
    assert.equal(pids.size, 2, 'both workers serve')

    const control = { stop: false }
    const running = stream(url, token, control, true)
    const ack = running.ack
    await until(() => ack.created.length > 20 && ack.servedBy.size > 0, 60_000, () => `the stream gets going (${ack.created.length} keys, ${ack.servedBy.size} workers seen)`)
    // Kill the worker that has answered the stream most: it is the one in the middle of it.
    const busiest = [...ack.servedBy].sort((a, b) => b[1] - a[1])[0]
    assert.ok(busiest !== undefined, 'the stream reached the workers')
    const [victim, servedBeforeKill] = busiest
    const before = ack.created.length + ack.rotated.size + ack.usage
    process.kill(victim, 'SIGKILL')
    // The survivor serves alone, then the replacement joins.
    const acknowledged = () => ack.created.length + ack.rotated.size + ack.usage
    await until(() => acknowledged() > before + 20, 60_000, () => `the cluster goes on acknowledging writes after the kill (${before} -> ${acknowledged()})`)
    control.stop = true
    await running.done
    assert.ok(before > 10, `${before} writes acknowledged before the kill`)
    // A killed process is reaped only once every thread has left the kernel: on a busy disk a
    // thread in the middle of a write can hold that up for seconds, so the bound is generous and
    // the failure says what the victim was doing.
    await until(() => cluster.output.some((l) => l.includes('worker died; restarting it')), 60_000,
      () => `the primary saw the worker die and restarts it (victim ${victim}: ${processState(victim)}; primary's last lines: ${cluster.output.slice(-5).join(' | ')})`)
    let now = new Set<number>()
    await until(async () => {
      now = await workerPids(url, token)
      return now.size === 2
    }, 60_000, () => `two workers serve again (${now.size})`, 500)
    assert.ok(!now.has(victim), 'the killed worker was replaced')
    assert.ok(!cluster.output.some((l) => l.includes('uncaught error')), `the primary never hit an uncaught error: ${cluster.output.filter((l) => l.includes('uncaught')).join(' | ')}`)
    await cluster.stop('SIGKILL')

    const events = await verifyAfterRestart(env, ack)
    await integrity(dataDir)
    console.log(`crash durability (cluster worker): ${ack.created.length} keys, ${ack.rotated.size} rotations, ${ack.usage} usage records acknowledged around kill -9 of worker ${victim} (it had answered ${servedBeforeKill} of the stream's probes; ${ack.failed} requests broken by the kill, none counted as acknowledged); all present after restart; audit chain of ${events} events verifies; integrity ok`)
  })
})
