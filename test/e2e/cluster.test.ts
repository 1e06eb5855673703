import assert from 'node:assert/strict'
import { once } from 'node:events'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort, requestOnce, startServer, type RunningServer } from '../helpers/server.ts'
import { tempDir } from '../helpers/tmp.ts'
import { until } from '../helpers/until.ts'

/** One GET on a fresh connection (no keep-alive), so each is routed by the cluster anew. */
function get (port: number, path: string, headers: Record<string, string> = {}) {
  return requestOnce(`http://127.0.0.1:${port}${path}`, { headers })
}

describe('cluster mode', { timeout: 240_000 }, () => {
  let cluster: RunningServer
  let tmp: Awaited<ReturnType<typeof tempDir>>
  let port: number
  let metricsPort: number
  let auth: Record<string, string>

  const pidsOf = async (n: number) => {
    const pids = new Set<number>()
    for (let i = 0; i < n; i++) {
      const res = await get(port, '/api/system/info', auth)
      if (res.status === 200) pids.add(JSON.parse(res.body).pid)
    }
    return pids
  }

  before(async () => {
    tmp = await tempDir('cluster')
    port = await freePort()
    metricsPort = await freePort()
    cluster = await startServer({
      DATA_DIR: tmp.dir,
      PORT: String(port),
      WORKERS: '2',
      METRICS_PORT: String(metricsPort),
      ADMIN_EMAILS: 'root@example.com',
      GENERAL_RATE_LIMIT_MAX: '1000000',
      AUTH_RATE_LIMIT_MAX: '1000',
      SHUTDOWN_TIMEOUT_MS: '5000'
    }, 'cluster.ts', /cluster ready/)
    const res = await fetch(`http://127.0.0.1:${port}/api/auth/register`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'root@example.com', password: 'cluster password 1' })
    })
    assert.equal(res.status, 201)
    auth = { authorization: `Bearer ${((await res.json()) as { accessToken: string }).accessToken}` }
  })
  after(async () => {
    await cluster?.stop('SIGKILL')
    await tmp?.remove()
  })

  it('serves on every worker', async () => {
    const pids = await pidsOf(40)
    assert.equal(pids.size, 2, `answered by ${[...pids].join(', ')}`)
    assert.ok(!pids.has(cluster.proc.pid as number), 'the primary does not serve')
  })

  it('without Redis, a logout on one worker is refused by every worker at once (the primary relays invalidations)', async () => {
    const login = await fetch(`http://127.0.0.1:${port}/api/auth/login`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'root@example.com', password: 'cluster password 1' })
    })
    assert.equal(login.status, 200)
    const second = { authorization: `Bearer ${((await login.json()) as { accessToken: string }).accessToken}` }
    // Both workers check the second session and keep its state in their caches (60 s).
    const warmed = new Set<number>()
    for (let burst = 0; burst < 10 && warmed.size < 2; burst++) {
      for (const res of await Promise.all(Array.from({ length: 16 }, () => get(port, '/api/system/info', second)))) {
        assert.equal(res.status, 200)
        warmed.add(JSON.parse(res.body).pid)
      }
    }
    assert.equal(warmed.size, 2, 'both workers hold the session in their caches')

    const logout = await fetch(`http://127.0.0.1:${port}/api/auth/logout`, { method: 'POST', headers: second })
    assert.equal(logout.status, 204)
    // At once, in bursts that reach both workers (the first session shows which answered).
    const answered = new Set<number>()
    const statuses: number[] = []
    for (let burst = 0; burst < 10 && answered.size < 2; burst++) {
      const revoked = Array.from({ length: 16 }, () => get(port, '/api/system/info', second))
      const live = Array.from({ length: 16 }, () => get(port, '/api/system/info', auth))
      for (const res of await Promise.all(revoked)) statuses.push(res.status)
      for (const res of await Promise.all(live)) if (res.status === 200) answered.add(JSON.parse(res.body).pid)
    }
    assert.equal(answered.size, 2, 'both workers answered during the checks')
    assert.deepEqual([...new Set(statuses)], [401], `the logged-out token is refused everywhere (${statuses.length} tries)`)
  })

  it('adds up the metrics of every worker on METRICS_PORT', async () => {
    const before = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).then((r) => r.text())
    const count = (text: string) => text.split('\n').filter((l) => l.startsWith('keyward_http_request_duration_seconds_count') && l.includes('route="/api/health"'))
      .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0)
    for (let i = 0; i < 30; i++) assert.equal((await get(port, '/api/health')).status, 200)
    const text = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).then((r) => r.text())
    assert.equal(count(text) - count(before), 30, 'the 30 health checks, wherever they landed')
    assert.equal((await get(port, '/metrics')).status, 404, 'not on the API port when METRICS_PORT is set')
  })

  it('serves METRICS_PORT on loopback by default, says so at start-up, and answers other paths in the one error shape', async () => {
    assert.ok(cluster.output.some((l) => l.includes(`"msg":"metrics listening at http://127.0.0.1:${metricsPort}/metrics, no token (loopback only: set METRICS_HOST to expose them, with METRICS_TOKEN)"`)), cluster.output.join('\n'))
    const res = await get(metricsPort, '/nope')
    assert.equal(res.status, 404)
    const body = JSON.parse(res.body)
    assert.deepEqual(Object.keys(body).sort(), ['code', 'error', 'message', 'requestId', 'statusCode'])
    assert.equal(body.code, 'NOT_FOUND')
  })

  it('replaces a killed worker', async () => {
    const pids = [...await pidsOf(20)]
    process.kill(pids[0] as number, 'SIGKILL')
    let now = new Set<number>()
    await until(async () => {
      now = await pidsOf(10)
      return now.size === 2 && !now.has(pids[0] as number)
    }, 20_000, () => `two workers again, the killed one (${pids[0]}) gone: answered by ${[...now].join(', ')}`, 200)
    assert.ok(cluster.output.some((l) => l.includes('worker died; restarting it')))
  })

  it('reloads every worker on SIGHUP with no request refused under steady traffic', async () => {
    const before = await pidsOf(20)
    let failures = 0
    let served = 0
    const reasons = new Map<string, number>()
    const fail = (reason: string) => { failures++; reasons.set(reason, (reasons.get(reason) ?? 0) + 1) }
    const traffic = { running: true }
    const loops = Array.from({ length: 4 }, async () => {
      while (traffic.running) {
        try {
          const res = await get(port, '/api/health')
          if (res.status === 200) served++
          else fail(`HTTP ${res.status} ${res.body.slice(0, 80)}`)
        } catch (err) {
          fail((err as NodeJS.ErrnoException).code ?? (err as Error).message)
        }
      }
    })
    await sleep(300) // steady traffic before the reload
    process.kill(cluster.proc.pid as number, 'SIGHUP')
    await until(() => cluster.output.some((l) => l.includes('reload finished')), 20_000, 'the reload finished', 200)
    await sleep(300) // and after it
    traffic.running = false
    await Promise.all(loops)
    assert.equal(failures, 0, `${failures} of ${served + failures} requests failed during the reload: ${JSON.stringify([...reasons])}`)
    assert.ok(served > 50)
    const afterPids = await pidsOf(20)
    assert.equal(afterPids.size, 2)
    for (const pid of afterPids) assert.ok(!before.has(pid), 'every worker was replaced')
  })

  it('drains on SIGTERM: an in-flight request finishes and everything exits 0', async () => {
    const { connect } = await import('node:net')
    const socket = connect(port, '127.0.0.1')
    await once(socket, 'connect')
    let response = ''
    socket.on('data', (c) => { response += c.toString() })
    const body = JSON.stringify({ email: 'late@example.com', password: 'written during shutdown' })
    socket.write(`POST /api/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 5)}`)
    // In flight: a worker has routed it (the gauge counts from onRequest, before the body is read).
    const inFlight = async () => Number(/^keyward_http_requests_in_flight(?:\{[^}]*\})? (\S+)$/m.exec(await fetch(`http://127.0.0.1:${metricsPort}/metrics`).then((r) => r.text()))?.[1] ?? 0)
    await until(async () => await inFlight() >= 1, 5000, 'the registration is in flight in a worker')
    const shuttingDown = () => cluster.output.filter((l) => l.includes('shutting down: finishing in-flight requests')).length
    const before = shuttingDown()
    const exit = cluster.stop('SIGTERM')
    await until(() => shuttingDown() >= before + 2, 5000, 'both workers begin their shutdown')
    socket.write(body.slice(5))
    assert.equal(await exit, 0)
    assert.match(response, /^HTTP\/1\.1 201/)
  })
})
