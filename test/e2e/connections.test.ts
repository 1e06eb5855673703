import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { openFileLimit } from '../../config.ts'
import type { OpenReport, ProbeReport, StatusReport } from '../helpers/connection-holder.ts'
import { ask, askAll, rssKiB, socketCount, spawnHolder } from '../helpers/holders.ts'
import { onScopeEnd } from '../helpers/scope.ts'
import { startServer, type RunningServer } from '../helpers/server.ts'
import { tempDir } from '../helpers/tmp.ts'
import { until } from '../helpers/until.ts'
import { call, verifyLoad } from '../helpers/verify-load.ts'

// One process may open 20,000 files on this machine. The server needs ~40 descriptors of its own
// (store files, pipes, epoll), so its cap is 19,200 and the test holds 19,000 idle connections,
// leaving room for the verify traffic beside them; the rest up to the cap is filled afterwards.
const CAP = 19_200
const HOLD = 19_000
const HOLDERS = 2
const SOURCE_ADDRESSES = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5']
const PAST_CAP = 400
const VERIFY_SECONDS = 10
const VERIFY_CONNECTIONS = 10
const SLOW_HEADERS_TIMEOUT_MS = 2000

const mib = (kib: number) => (kib / 1024).toFixed(0)
const ms = (value: number) => value < 1 ? '<1' : String(value)

/** The kernel's slab memory, machine-wide (both ends of a loopback connection live here). */
function slabKiB (): number {
  return Number(/^Slab:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1])
}

function merge (reports: OpenReport[]) {
  const failures: Record<string, number> = {}
  for (const r of reports) for (const [k, v] of Object.entries(r.failures)) failures[k] = (failures[k] ?? 0) + v
  return { held: reports.reduce((s, r) => s + r.held, 0), refused: reports.reduce((s, r) => s + r.refused, 0), failures }
}

// Linux only (/proc, loopback source addresses), and only where a process may open 20,000 files.
const unsupported = process.platform !== 'linux' ? 'needs Linux' : (openFileLimit() ?? 0) < 20_000 ? 'needs an open-file limit of at least 20,000' : false

describe('many connections on one process', { timeout: 280_000, skip: unsupported }, () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>
  let server: RunningServer
  let pid: number
  let root: string
  let client: string
  const holders: ChildProcess[] = []
  const figures = {
    idleSockets: 0,
    held: 0,
    rssIdle: 0,
    rssHeld: 0,
    rssAfter: 0,
    slabGrowth: 0,
    openMs: 0,
    baseline: { p50: 0, p99: 0, rps: 0 },
    during: { p50: 0, p99: 0, rps: 0, requests: 0 },
    atCap: 0,
    refused: 0,
    slowCutMs: [] as number[]
  }

  before(async () => {
    tmp = await tempDir('connections')
    server = await startServer({
      DATA_DIR: tmp.dir,
      MAX_CONNECTIONS: String(CAP),
      // Idle connections must outlive the test; in production the keep-alive timeout frees them.
      KEEP_ALIVE_TIMEOUT_MS: '600000',
      CONNECTION_TIMEOUT_MS: '600000',
      GENERAL_RATE_LIMIT_MAX: '1000000000',
      AUTH_RATE_LIMIT_MAX: '1000',
      VERIFY_FAILURE_LIMIT_MAX: '1000000'
    })
    pid = server.proc.pid as number
    const { accessToken } = await call(server.url, '/api/auth/register', { email: 'many@example.com', password: 'many connections 1' }) as { accessToken: string }
    root = (await call(server.url, '/api/keys', { kind: 'issued', name: 'backend', scopes: ['keyward:verify'] }, accessToken) as { secret: string }).secret
    client = (await call(server.url, '/api/keys', { kind: 'issued', name: 'client' }, accessToken) as { secret: string }).secret
    for (let i = 0; i < HOLDERS; i++) holders.push(spawnHolder())
  })

  after(async () => {
    for (const h of holders) h.kill('SIGKILL')
    await server?.stop('SIGKILL')
    await tmp?.remove()
    const perConnection = figures.held > 0 ? (figures.rssHeld - figures.rssIdle) / figures.held : 0
    console.log(`connections: held ${figures.held} idle keep-alive (${SOURCE_ADDRESSES.length} source addresses, opened in ${(figures.openMs / 1000).toFixed(1)} s), ` +
      `server RSS idle ${mib(figures.rssIdle)} MiB -> ${mib(figures.rssHeld)} MiB held (${perConnection.toFixed(1)} KiB per connection) -> ${mib(figures.rssAfter)} MiB after release, ` +
      `kernel slab +${mib(figures.slabGrowth)} MiB machine-wide (${(figures.slabGrowth / Math.max(1, figures.held) / 2).toFixed(1)} KiB per socket, both ends, noisy), ` +
      `verify p50 ${ms(figures.baseline.p50)} ms p99 ${ms(figures.baseline.p99)} ms (${Math.round(figures.baseline.rps)} req/s) alone, p50 ${ms(figures.during.p50)} ms p99 ${ms(figures.during.p99)} ms (${Math.round(figures.during.rps)} req/s, ${VERIFY_CONNECTIONS} connections) during hold, ` +
      `${figures.atCap} at the cap of ${CAP}, ${figures.refused} refused past it, healthy; ` +
      `slowloris cut at ${figures.slowCutMs.length === 0 ? '?' : `${Math.min(...figures.slowCutMs)}-${Math.max(...figures.slowCutMs)} ms`} with HEADERS_TIMEOUT_MS=${SLOW_HEADERS_TIMEOUT_MS}`)
  })

  it(`holds ${HOLD} idle keep-alive connections from ${SOURCE_ADDRESSES.length} source addresses`, async () => {
    const warm = await verifyLoad(server.url, root, client, 3, VERIFY_CONNECTIONS)
    assert.equal(warm.errors + warm.unexpected, 0)
    const alone = await verifyLoad(server.url, root, client, 5, VERIFY_CONNECTIONS)
    figures.baseline = alone
    await sleep(500) // the load's connections wind down before the idle figures
    figures.idleSockets = socketCount(pid)
    figures.rssIdle = rssKiB(pid)
    const slabBefore = slabKiB()

    const started = Date.now()
    const opened = merge(await askAll<OpenReport>(holders, () => ({
      op: 'open', port: server.port, addresses: SOURCE_ADDRESSES, count: HOLD / HOLDERS, batch: 250, path: '/api/health'
    })))
    figures.openMs = Date.now() - started
    assert.deepEqual(opened.failures, {}, 'every connection was answered and kept')
    assert.equal(opened.held, HOLD)

    await sleep(1000) // held idle a while: none may be closed
    const status = await askAll<StatusReport>(holders, () => ({ op: 'status' }))
    figures.held = status.reduce((s, r) => s + r.held, 0)
    assert.equal(figures.held, HOLD, 'none was closed while idle')
    const serverSide = socketCount(pid) - figures.idleSockets
    assert.ok(Math.abs(serverSide - HOLD) <= 20, `the server holds ${serverSide} sockets beyond its idle ones`)
    figures.rssHeld = rssKiB(pid)
    figures.slabGrowth = slabKiB() - slabBefore
  })

  it('serves verify traffic while they are held', async () => {
    const during = await verifyLoad(server.url, root, client, VERIFY_SECONDS, VERIFY_CONNECTIONS)
    figures.during = during
    assert.equal(during.errors, 0, 'no connection errors or timeouts')
    assert.equal(during.unexpected, 0, 'every verification answered 200')
    assert.ok(during.requests > 1000, `${during.requests} verifications in ${VERIFY_SECONDS} s`)
    // Loose: the machine is shared; a stalled event loop would show as seconds, not milliseconds.
    assert.ok(during.p99 < 1000, `p99 ${during.p99} ms`)
    const status = await askAll<StatusReport>(holders, () => ({ op: 'status' }))
    assert.equal(status.reduce((s, r) => s + r.held, 0), HOLD, 'the idle connections survived the traffic')
  })

  it('refuses connections past the cap, keeps serving held ones and stays healthy', async () => {
    await sleep(500) // the verify load's connections wind down
    const extra = merge(await askAll<OpenReport>(holders, () => ({
      op: 'open', port: server.port, addresses: SOURCE_ADDRESSES, count: PAST_CAP, batch: 50, path: '/api/health'
    })))
    const room = CAP - HOLD
    figures.atCap = HOLD + extra.held
    figures.refused = extra.refused
    assert.ok(extra.held <= room && extra.held >= room - 20, `${extra.held} more were kept (room for ${room})`)
    assert.equal(extra.held + extra.refused, PAST_CAP * HOLDERS)
    assert.ok(Object.keys(extra.failures).every((reason) => reason === 'closed by the server' || reason === 'ECONNRESET'), JSON.stringify(extra.failures))
    const serverSide = socketCount(pid) - figures.idleSockets
    assert.ok(serverSide <= CAP, `the server holds ${serverSide} connections, within its cap`)

    const probes = await askAll<ProbeReport>(holders, () => ({ op: 'probe', count: 5, path: '/api/health' }))
    assert.deepEqual(probes.flatMap((p) => p.statuses), Array(5 * HOLDERS).fill(200), 'held connections are still served, and health is ok')

    const released = await ask<StatusReport>(holders[0]!, { op: 'release', count: 100 })
    assert.ok(released.held > 0)
    await until(() => socketCount(pid) - figures.idleSockets < CAP, 5000, 'the server sees released connections close: room under the cap')
    const fresh = await fetch(`${server.url}/api/health`)
    assert.equal(fresh.status, 200)
    assert.equal(((await fresh.json()) as { status: string }).status, 'ok')
    const verified = await call(server.url, '/api/keys/verify', { key: client }, root)
    assert.equal(verified.code, 'VALID')

    assert.equal(server.proc.exitCode, null, 'the server is alive')
    assert.doesNotThrow(() => process.kill(pid, 0))
    assert.ok(!server.output.some((l) => /EMFILE|"level":(50|60)/.test(l)), server.output.filter((l) => /EMFILE|"level":(50|60)/.test(l)).slice(0, 3).join('\n'))

    for (const h of holders) await ask<StatusReport>(h, { op: 'release', count: CAP })
    await until(() => socketCount(pid) - figures.idleSockets <= 20, 10_000, () => `released connections are gone from the server (${socketCount(pid) - figures.idleSockets} left)`, 100)
    figures.rssAfter = rssKiB(pid)
  })

  it('cuts slow-header connections at the headers timeout, so half-open requests cannot hold the cap', async (ctx) => {
    const slow = await startServer({
      DATA_DIR: join(tmp.dir, 'slow'),
      HEADERS_TIMEOUT_MS: String(SLOW_HEADERS_TIMEOUT_MS),
      REQUEST_TIMEOUT_MS: '5000',
      CONNECTION_TIMEOUT_MS: '600000'
    })
    onScopeEnd(ctx, () => slow.stop('SIGKILL'))
    // How long after connecting the server closes the socket, and what it answered first.
    const watch = (socket: net.Socket, started: number) => new Promise<{ ms: number, answer: string }>((resolve) => {
      let answer = ''
      socket.on('data', (c) => { answer += c.toString('latin1') })
      socket.on('error', () => {})
      socket.on('close', () => resolve({ ms: Date.now() - started, answer }))
    })
    const connect = async () => {
      const socket = net.connect({ host: '127.0.0.1', port: slow.port })
      await once(socket, 'connect')
      return socket
    }

    // Slowloris: headers one byte at a time, each byte well within any idle timeout.
    const dribble = await connect()
    const dribbleClosed = watch(dribble, Date.now())
    const bytes = 'GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ' + 'a'.repeat(1000)
    let i = 0
    const timer = setInterval(() => { if (!dribble.destroyed) dribble.write(bytes[i++ % bytes.length]!) }, 100)
    // Many half-open requests, and connections that never send a byte.
    const partial = await Promise.all(Array.from({ length: 100 }, async () => {
      const s = await connect()
      const closed = watch(s, Date.now())
      s.write('GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n')
      return closed
    }))
    const silent = await Promise.all(Array.from({ length: 100 }, async () => watch(await connect(), Date.now())))
    // An idle keep-alive connection between requests is not a half-open request.
    const idle = await connect()
    const idleClosed = watch(idle, Date.now())
    idle.write('GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')

    const cut = await dribbleClosed
    clearInterval(timer)
    assert.match(cut.answer, /^HTTP\/1\.1 408/, 'the slow client is told its request timed out')
    const all = [cut, ...await Promise.all(partial), ...await Promise.all(silent)]
    for (const c of all) {
      assert.ok(c.ms >= SLOW_HEADERS_TIMEOUT_MS - 100 && c.ms <= SLOW_HEADERS_TIMEOUT_MS + 1500, `closed after ${c.ms} ms`)
    }
    figures.slowCutMs = all.map((c) => c.ms)
    const stillOpen = await Promise.race([idleClosed.then(() => false), sleep(1000).then(() => true)])
    assert.ok(stillOpen, 'the idle keep-alive connection outlives the headers timeout')
    idle.destroy()
    const health = await fetch(`${slow.url}/api/health`)
    assert.equal(health.status, 200)
  })
})
