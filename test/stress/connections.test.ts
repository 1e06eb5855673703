import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { FD_RESERVE, openFileLimit } from '../../config.ts'
import type { OpenReport, ProbeReport, StatusReport } from '../helpers/connection-holder.ts'
import { askAll, rssKiB, socketCount, spawnHolder } from '../helpers/holders.ts'
import { freePort, startServer, type RunningServer } from '../helpers/server.ts'
import { tempDir } from '../helpers/tmp.ts'
import { call, verifyLoad } from '../helpers/verify-load.ts'

// 100,000 idle keep-alive connections held against one cluster on loopback. One process may open
// 20,000 files on this machine, so both ends are spread over processes: WORKERS server workers,
// each capped at its file limit minus its own reserve, and HOLDERS client processes of ~16,700
// sockets each. Each holder connects from its own loopback source addresses, so no address runs
// out of its ~28,000 ephemeral ports. Workers accept for themselves (SCHED_NONE, decision 008)
// and unevenly: with 7 workers one reached its cap at 1.4x the mean share and closed connections
// the others had room for; with 10 the busiest reached 1.84x (7% below its cap); with 12 (a cap of
// 2.4 times the mean share) a faster host's busiest worker took 2.37x and closed 225. 16 workers
// give each a cap of 3.2 times its mean share.
const TARGET = 100_000
const WORKERS = 16
const HOLDERS = 6
const ADDRESSES_PER_HOLDER = 2
const BATCH = 100
const VERIFY_SECONDS = 10
const VERIFY_CONNECTIONS = 10
const P99_BOUND_MS = 50
/** Sockets a worker may hold beyond its counted share at any instant (verify traffic, the store). */
const SOCKET_SLACK = 20
/** After release no worker grows by more than this (V8 keeps freed heap pages for reuse, so RSS stays near its held level). */
const RSS_GROWTH_AFTER_KIB = 32 * 1024
/** After release the kernel's slab keeps at most this share of its growth (TIME_WAIT entries for 60 s, caches). */
const SLAB_KEPT_BOUND = 0.5

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const mib = (kib: number) => (kib / 1024).toFixed(0)
const sum = (values: number[]) => values.reduce((s, v) => s + v, 0)

function meminfoKiB (field: string): number {
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/meminfo', 'utf8'))?.[1])
}

/** TCP sockets in use and TCP memory in pages, for this network namespace. */
function tcpSockstat () {
  const line = /^TCP: (.*)$/m.exec(readFileSync('/proc/net/sockstat', 'utf8'))?.[1] ?? ''
  const field = (name: string) => Number(new RegExp(`${name} (\\d+)`).exec(line)?.[1] ?? 0)
  return { inuse: field('inuse'), tw: field('tw'), memPages: field('mem') }
}

/** The cluster's workers: the processes whose parent is the primary and that run the server (tsx's esbuild is a child too). */
function workersOf (parent: number): number[] {
  const children: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      // The command name may hold spaces and parentheses: the parent pid follows the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const isChild = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === parent
      if (isChild && /server\.[jt]s/.test(readFileSync(`/proc/${entry}/cmdline`, 'utf8'))) children.push(Number(entry))
    } catch {
      // Exited between the listing and the read.
    }
  }
  return children.sort((a, b) => a - b)
}

interface WorkerFigures { pid: number, idleSockets: number, rssIdle: number, held: number, rssHeld: number, rssAfter: number, socketsAfter: number }

const fileLimit = openFileLimit() ?? 0
const CAP = fileLimit - FD_RESERVE
// Linux only (/proc, loopback source addresses), and only where the workers' caps add up to the target.
const unsupported = process.platform !== 'linux' ? 'needs Linux' : CAP * WORKERS < TARGET * 1.2 ? `needs an open-file limit of at least ${Math.ceil(TARGET * 1.2 / WORKERS) + FD_RESERVE}` : false

describe(`${TARGET} connections on one machine`, { timeout: 280_000, skip: unsupported }, () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>
  let cluster: RunningServer
  let url: string
  let root: string
  let client: string
  const holders: ChildProcess[] = []
  const workers: WorkerFigures[] = []
  const figures = {
    held: 0,
    shed: 0,
    openMs: 0,
    slabIdle: 0,
    slabHeld: 0,
    slabAfter: 0,
    tcpIdle: tcpSockstat(),
    tcpHeld: tcpSockstat(),
    tcpAfter: tcpSockstat(),
    baseline: { p50: 0, p99: 0, rps: 0, requests: 0 },
    during: { p50: 0, p99: 0, rps: 0, requests: 0, errors: 0, unexpected: 0 },
    releaseMs: 0
  }

  before(async () => {
    tmp = await tempDir('many-connections')
    const port = await freePort()
    cluster = await startServer({
      DATA_DIR: tmp.dir,
      PORT: String(port),
      WORKERS: String(WORKERS),
      MAX_CONNECTIONS: String(CAP),
      // Idle connections must outlive the test; in production the keep-alive timeout frees them.
      KEEP_ALIVE_TIMEOUT_MS: '600000',
      CONNECTION_TIMEOUT_MS: '600000',
      GENERAL_RATE_LIMIT_MAX: '1000000000',
      AUTH_RATE_LIMIT_MAX: '1000',
      VERIFY_FAILURE_LIMIT_MAX: '1000000'
    }, 'cluster.ts', /cluster ready/, 120_000)
    url = `http://127.0.0.1:${port}`
    const { accessToken } = await call(url, '/api/auth/register', { email: 'many@example.com', password: 'many connections 1' }) as { accessToken: string }
    root = (await call(url, '/api/keys', { kind: 'issued', name: 'backend', scopes: ['keyward:verify'] }, accessToken) as { secret: string }).secret
    client = (await call(url, '/api/keys', { kind: 'issued', name: 'client' }, accessToken) as { secret: string }).secret
    for (let i = 0; i < HOLDERS; i++) holders.push(spawnHolder())
  })

  after(async () => {
    for (const h of holders) h.kill('SIGKILL')
    const pids = cluster === undefined ? [] : workersOf(cluster.proc.pid as number)
    if (cluster !== undefined) {
      const stopped = cluster.stop('SIGTERM')
      const stuck = setTimeout(() => cluster.proc.kill('SIGKILL'), 20_000)
      await stopped
      clearTimeout(stuck)
    }
    // A worker the primary could not retire is not left behind on a shared machine.
    for (const pid of pids) {
      try { process.kill(pid, 'SIGKILL') } catch { /* already gone */ }
    }
    await tmp?.remove()
    const shares = workers.map((w) => w.held)
    const mean = TARGET / WORKERS
    const perConnection = workers.map((w) => w.held > 0 ? ((w.rssHeld - w.rssIdle) / w.held).toFixed(1) : '?')
    const kernelHeld = figures.slabHeld - figures.slabIdle
    console.log(`many connections: held ${figures.held} idle keep-alive connections on ${WORKERS} workers (cap ${CAP} each) from ${HOLDERS} client processes on ${HOLDERS * ADDRESSES_PER_HOLDER} loopback source addresses, opened in ${(figures.openMs / 1000).toFixed(1)} s (${Math.round(figures.held / Math.max(1, figures.openMs) * 1000)}/s, ${figures.shed} first answers shed with 503 and asked again); ` +
      `per-worker share ${shares.join(' ')} (min ${Math.min(...shares)}, max ${Math.max(...shares)}, ${((Math.max(...shares) / mean - 1) * 100).toFixed(0)}% over the mean of ${Math.round(mean)}); ` +
      `worker RSS idle ${workers.map((w) => mib(w.rssIdle)).join(' ')} MiB -> held ${workers.map((w) => mib(w.rssHeld)).join(' ')} MiB (KiB per connection: ${perConnection.join(' ')}) -> after release ${workers.map((w) => mib(w.rssAfter)).join(' ')} MiB; ` +
      `kernel: slab ${mib(figures.slabIdle)} -> ${mib(figures.slabHeld)} -> ${mib(figures.slabAfter)} MiB machine-wide (+${(kernelHeld / Math.max(1, figures.held * 2)).toFixed(1)} KiB per socket, both ends, noisy), ` +
      `TCP sockets in use ${figures.tcpIdle.inuse} -> ${figures.tcpHeld.inuse} -> ${figures.tcpAfter.inuse} (${figures.tcpAfter.tw} in TIME_WAIT after), TCP memory ${figures.tcpIdle.memPages} -> ${figures.tcpHeld.memPages} -> ${figures.tcpAfter.memPages} pages; ` +
      `${cluster?.output.filter((l) => l.includes('alert raised: event_loop_delay')).length ?? 0} event-loop-delay alerts; verify (${VERIFY_CONNECTIONS} connections) p50 ${figures.baseline.p50} ms p99 ${figures.baseline.p99} ms ${Math.round(figures.baseline.rps)} req/s for 5 s before, p50 ${figures.during.p50} ms p99 ${figures.during.p99} ms ${Math.round(figures.during.rps)} req/s for ${VERIFY_SECONDS} s during the hold; released in ${(figures.releaseMs / 1000).toFixed(1)} s`)
  })

  it(`opens and holds ${TARGET} idle keep-alive connections, none refused, spread over every worker`, async () => {
    const warm = await verifyLoad(url, root, client, 3, VERIFY_CONNECTIONS)
    assert.equal(warm.errors + warm.unexpected, 0)
    figures.baseline = await verifyLoad(url, root, client, 5, VERIFY_CONNECTIONS)
    await wait(1000)
    const pids = workersOf(cluster.proc.pid as number)
    assert.equal(pids.length, WORKERS, `workers: ${pids.join(', ')}`)
    for (const pid of pids) workers.push({ pid, idleSockets: socketCount(pid), rssIdle: rssKiB(pid), held: 0, rssHeld: 0, rssAfter: 0, socketsAfter: 0 })
    figures.slabIdle = meminfoKiB('Slab')
    figures.tcpIdle = tcpSockstat()

    const started = Date.now()
    const opened = await askAll<OpenReport>(holders, (i) => ({
      op: 'open',
      port: Number(new URL(url).port),
      addresses: Array.from({ length: ADDRESSES_PER_HOLDER }, (_, a) => `127.0.0.${2 + i * ADDRESSES_PER_HOLDER + a}`),
      count: Math.floor(TARGET / HOLDERS) + (i < TARGET % HOLDERS ? 1 : 0),
      batch: BATCH,
      path: '/api/health'
    }))
    figures.openMs = Date.now() - started
    figures.shed = sum(opened.map((r) => r.shed))
    const failures: Record<string, number> = {}
    for (const r of opened) for (const [k, v] of Object.entries(r.failures)) failures[k] = (failures[k] ?? 0) + v

    await wait(1000)
    for (const w of workers) {
      w.held = socketCount(w.pid) - w.idleSockets
      w.rssHeld = rssKiB(w.pid)
    }
    figures.slabHeld = meminfoKiB('Slab')
    figures.tcpHeld = tcpSockstat()
    figures.held = sum((await askAll<StatusReport>(holders, () => ({ op: 'status' }))).map((r) => r.held))
    const shares = workers.map((w) => w.held).join(' ')
    // A worker at its cap closes what it accepted while others had room: that shows here first.
    assert.deepEqual(failures, {}, `every connection was answered and kept (per-worker shares: ${shares})`)
    assert.equal(figures.held, TARGET, 'none was closed while idle')
    assert.ok(Math.abs(sum(workers.map((w) => w.held)) - TARGET) <= SOCKET_SLACK * WORKERS, `the workers hold ${shares}`)
    for (const w of workers) assert.ok(w.held > 0 && w.held <= CAP, `worker ${w.pid} holds ${w.held} (cap ${CAP})`)
  })

  it(`serves verify traffic during the hold with p99 within ${P99_BOUND_MS} ms`, async () => {
    figures.during = await verifyLoad(url, root, client, VERIFY_SECONDS, VERIFY_CONNECTIONS)
    assert.equal(figures.during.errors, 0, 'no connection errors or timeouts')
    assert.equal(figures.during.unexpected, 0, 'every verification answered 200')
    assert.ok(figures.during.requests > 1000, `${figures.during.requests} verifications in ${VERIFY_SECONDS} s`)
    assert.ok(figures.during.p99 <= P99_BOUND_MS, `p99 ${figures.during.p99} ms`)
    const probes = await askAll<ProbeReport>(holders, () => ({ op: 'probe', count: 5, path: '/api/health' }))
    assert.deepEqual(probes.flatMap((p) => p.statuses), Array(5 * HOLDERS).fill(200), 'held connections are still served, and health is ok')
    const status = await askAll<StatusReport>(holders, () => ({ op: 'status' }))
    assert.equal(sum(status.map((r) => r.held)), TARGET, 'the idle connections survived the traffic')
  })

  it('releases them: every worker back to its idle sockets, kernel slab within half its growth, no worker grows', async () => {
    const started = Date.now()
    const left = await askAll<StatusReport>(holders, () => ({ op: 'release', count: TARGET }))
    assert.equal(sum(left.map((r) => r.held)), 0)
    for (let waited = 0; waited < 20_000 && workers.some((w) => socketCount(w.pid) - w.idleSockets > SOCKET_SLACK); waited += 250) await wait(250)
    figures.releaseMs = Date.now() - started
    await wait(2000)
    for (const w of workers) {
      w.socketsAfter = socketCount(w.pid)
      w.rssAfter = rssKiB(w.pid)
    }
    figures.slabAfter = meminfoKiB('Slab')
    figures.tcpAfter = tcpSockstat()
    for (const w of workers) {
      assert.ok(w.socketsAfter - w.idleSockets <= SOCKET_SLACK, `worker ${w.pid} still holds ${w.socketsAfter - w.idleSockets} sockets`)
      assert.ok(w.rssAfter - w.rssHeld <= RSS_GROWTH_AFTER_KIB, `worker ${w.pid}: RSS ${mib(w.rssIdle)} -> ${mib(w.rssHeld)} -> ${mib(w.rssAfter)} MiB grew after release`)
    }
    const slabGrowth = figures.slabHeld - figures.slabIdle
    assert.ok(figures.slabAfter - figures.slabIdle <= slabGrowth * SLAB_KEPT_BOUND, `slab ${mib(figures.slabIdle)} -> ${mib(figures.slabHeld)} -> ${mib(figures.slabAfter)} MiB`)
    const health = await fetch(`${url}/api/health`)
    assert.equal(health.status, 200)
    // An event-loop-delay alert says the shared cores were starved, which the figures show; any other error fails.
    const errors = cluster.output.filter((l) => /EMFILE|"level":(50|60)/.test(l) && !l.includes('"alert":{"name":"event_loop_delay"'))
    assert.deepEqual(errors.slice(0, 3), [])
  })
})
