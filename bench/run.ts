/**
 * npm run bench: autocannon against a bare Fastify baseline and Keyward's scenarios, in one run
 * on one machine, reporting medians and ratios to the baseline. The servers run in their own
 * processes; autocannon runs in this one.
 *
 * Every scenario also gets the server process's CPU time per request (user + system, from
 * /proc/<pid>/stat around a fixed number of requests, the median of BENCH_CPU_RUNS runs): on
 * shared cores requests per second swing, CPU per request does not.
 *
 * In embedded mode a held-key storm follows: verify's p99 with BENCH_STORM_CONCURRENCY (20) held-key
 * creations and reveals in flight against the same load alone (each answer timed to the
 * microsecond, not autocannon's whole milliseconds), and health's answers meanwhile.
 *
 * Last, a paired comparison for the scenarios with CPU targets: Keyward and the bare routes run
 * side by side and their CPU runs alternate for BENCH_PAIRED_ROUNDS (5) rounds, so a host whose
 * speed drifts during the bench cannot tilt the ratios.
 *
 * With redis among BENCH_MODES, verify in Redis mode is paired with embedded mode the same way.
 * BENCH_AGAINST=<folder of another checkout> adds the same pairing of this checkout against that one,
 * and key creation (with redis among BENCH_MODES, also verify with a per-key limit in Redis mode).
 *
 *   BENCH_DURATION=10 BENCH_CONNECTIONS=100 BENCH_MODES=embedded,redis BENCH_CPU_REQUESTS=20000 npm run bench
 */
import { execFileSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { ROOT, start, stop } from './processes.ts'

const DURATION = Number(process.env.BENCH_DURATION ?? 10)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 100)
const MODES = (process.env.BENCH_MODES ?? 'embedded,metrics-off,cluster,redis').split(',').filter(Boolean)
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const WARMUP = Math.min(3, DURATION)
const CPU_REQUESTS = Number(process.env.BENCH_CPU_REQUESTS ?? 20_000)
const CPU_CONNECTIONS = Number(process.env.BENCH_CPU_CONNECTIONS ?? 20)
const CPU_RUNS = Number(process.env.BENCH_CPU_RUNS ?? 3)
/** The held-key storm (issue 16, item 5): derivations kept in flight while verify is measured. */
const STORM_CONCURRENCY = Number(process.env.BENCH_STORM_CONCURRENCY ?? 20)
const STORM_SECONDS = Number(process.env.BENCH_STORM_SECONDS ?? 5)
/** Rounds of the paired CPU comparison (Keyward and its bare route alternating); 0 skips it. */
const PAIRED_ROUNDS = Number(process.env.BENCH_PAIRED_ROUNDS ?? 5)
/** Another checkout of Keyward to compare this one with, paired like the bare routes (pairedKeywards). */
const AGAINST = process.env.BENCH_AGAINST
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim())

/**
 * Issue 16 set verify's bound at 40 µs on a host where the bare POST with verify's schemas took
 * 23 µs. Absolute microseconds move with the host (the same bare POST has taken 35 to 100 µs here
 * on other days); the same bound as a ratio to the bare POST measured in the same run does not.
 * Both are reported; the ratio is the one a run on any host can meet or miss.
 */
const VERIFY_CPU_RATIO = Number((40 / 23).toFixed(2))

/** Every tier raised so the bench measures the work, not the limiter (stated in the report). */
const RAISED_TIERS = {
  AUTH_RATE_LIMIT_MAX: '1000000',
  KEY_CREATE_RATE_LIMIT_MAX: '1000000',
  HEAVY_RATE_LIMIT_MAX: '1000000',
  GENERAL_RATE_LIMIT_MAX: '1000000',
  VERIFY_FAILURE_LIMIT_MAX: '1000000000'
}

type Mode = 'embedded' | 'redis' | 'metrics-off' | 'cluster'
/** The bare servers a scenario is compared with (bench/baseline.ts). */
type Reference = 'bare hello' | 'bare POST' | 'production POST' | 'bare list' | 'bare health'

interface Scenario {
  name: string
  mode: 'baseline' | Mode
  method: 'GET' | 'POST'
  path: string
  headers?: Record<string, string>
  body?: string
  /** The answer every request must get (anything else counts as an error). */
  expect: number
  /** The bare route its ratios are taken against (the hello world when not said). */
  reference?: Reference
  /** Requests per CPU run when not CPU_REQUESTS: writes cost a millisecond each, a tenth is plenty. */
  cpuRequests?: number
  /** Requests per second at least `ratio` x the reference's; CPU per request at most `cpuUs`, or `cpuRatio` x the reference's. */
  target?: { ratio?: number, p99Ms?: number, cpuUs?: number, cpuRatio?: number }
}

interface Row {
  scenario: string
  mode: string
  requestsPerSecond: number
  p50Ms: number
  p99Ms: number
  ratio: number | null
  /** Server CPU time (user + system) per request, µs; null when the server is several processes. */
  cpuUs: number | null
  cpuRatio: number | null
  reference: Reference
  errors: number
  unexpected: number
  target: string
}

async function freePort (): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function api (url: string, method: string, path: string, body?: unknown, token?: string) {
  const res = await fetch(url + path, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const text = await res.text()
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`)
  return JSON.parse(text)
}

/** A user with keys to verify and list, created through the API. */
async function seed (url: string) {
  const email = `bench-${Date.now()}@example.com`
  const { accessToken } = await api(url, 'POST', '/api/auth/register', { email, password: 'benchmark password 1' })
  const root = await api(url, 'POST', '/api/keys', { kind: 'issued', name: 'backend', scopes: ['keyward:verify'] }, accessToken)
  const valid = await api(url, 'POST', '/api/keys', { kind: 'issued', name: 'client', scopes: ['read'] }, accessToken)
  const limited = await api(url, 'POST', '/api/keys', { kind: 'issued', name: 'limited', rateLimit: { limit: 1_000_000_000, windowMs: 1000 } }, accessToken)
  for (let i = 0; i < 30; i++) await api(url, 'POST', '/api/keys', { kind: 'issued', name: `filler ${i}`, tags: ['bench'] }, accessToken)
  // A well-formed key this owner cannot see: another user's.
  const other = await api(url, 'POST', '/api/auth/register', { email: `other-${email}`, password: 'benchmark password 2' })
  const foreign = await api(url, 'POST', '/api/keys', { kind: 'issued', name: 'foreign' }, other.accessToken)
  return { accessToken, root: root.secret as string, valid: valid.secret as string, limited: limited.secret as string, unknown: foreign.secret as string, keyId: valid.key.id as string }
}

/** For reading the scenarios' names and targets without a server. */
const NO_SEED = { accessToken: '', root: '', valid: '', limited: '', unknown: '', keyId: '' }

function scenarios (mode: Mode, s: Awaited<ReturnType<typeof seed>>): Scenario[] {
  const verify = (key: string) => JSON.stringify({ key })
  const backend = { authorization: `Bearer ${s.root}`, 'content-type': 'application/json' }
  const user = { authorization: `Bearer ${s.accessToken}` }
  const onVerify = { reference: 'bare POST' as const }
  const all: Scenario[] = [
    { name: 'verify (valid, cached)', mode, method: 'POST', path: '/api/keys/verify', headers: backend, body: verify(s.valid), expect: 200, ...onVerify, target: mode === 'embedded' ? { ratio: 0.6, p99Ms: 5, cpuUs: 40, cpuRatio: VERIFY_CPU_RATIO } : mode === 'redis' ? { ratio: 0.55 } : undefined },
    { name: 'verify (malformed)', mode, method: 'POST', path: '/api/keys/verify', headers: backend, body: verify('kw_not-a-real-key'), expect: 200, ...onVerify },
    { name: 'verify (unknown key)', mode, method: 'POST', path: '/api/keys/verify', headers: backend, body: verify(s.unknown), expect: 200, ...onVerify },
    { name: 'verify (per-key rate limit)', mode, method: 'POST', path: '/api/keys/verify', headers: backend, body: verify(s.limited), expect: 200, ...onVerify, target: mode === 'redis' ? { ratio: 0.4 } : undefined },
    { name: 'list keys (cached)', mode, method: 'GET', path: '/api/keys?limit=20', headers: user, expect: 200, reference: 'bare list', target: mode === 'embedded' ? { cpuRatio: 1.5 } : undefined },
    { name: 'create key', mode, method: 'POST', path: '/api/keys', headers: { ...user, 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'issued', name: 'bench' }), expect: 201, cpuRequests: Math.ceil(CPU_REQUESTS / 10) },
    { name: 'record usage', mode, method: 'POST', path: `/api/keys/${s.keyId}/usage`, headers: { ...user, 'content-type': 'application/json' }, body: JSON.stringify({ count: 1 }), expect: 201, cpuRequests: Math.ceil(CPU_REQUESTS / 10) },
    { name: 'health', mode, method: 'GET', path: '/api/health', expect: 200, reference: 'bare health', target: mode === 'embedded' ? { cpuRatio: 1.5 } : undefined }
  ]
  if (mode === 'metrics-off' || mode === 'cluster') return all.filter((x) => x.name.startsWith('verify (valid')).map((x) => ({ ...x, target: undefined }))
  return mode === 'redis' ? all.filter((x) => x.name.startsWith('verify (valid') || x.name.startsWith('verify (per-key') || x.name.startsWith('list')) : all
}

/** The bare routes, measured after Keyward so they serialise the very bodies Keyward answered. */
function references (fixtures: boolean): Array<Omit<Scenario, 'mode'> & { reference: Reference, shape: 'bare' | 'production' }> {
  const body = JSON.stringify({ key: 'kw_live_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG_abcdef' })
  const json = { 'content-type': 'application/json', authorization: 'Bearer backend-credential' }
  return [
    { name: 'bare Fastify hello world', reference: 'bare hello', shape: 'bare', method: 'GET', path: '/', expect: 200 },
    { name: 'bare POST, verify schemas', reference: 'bare POST', shape: 'bare', method: 'POST', path: '/verify', headers: json, body, expect: 200 },
    { name: 'production-shaped POST', reference: 'production POST', shape: 'production', method: 'POST', path: '/verify', headers: json, body, expect: 200 },
    ...(fixtures
      ? [
          { name: 'bare list, same 20-key page', reference: 'bare list', shape: 'bare', method: 'GET', path: '/list', expect: 200 } as const,
          { name: 'bare health, same body', reference: 'bare health', shape: 'bare', method: 'GET', path: '/health', expect: 200 } as const
        ]
      : [])
  ]
}

function countUnexpected (result: autocannon.Result, expect: number) {
  return Object.entries(result.statusCodeStats ?? {})
    .filter(([code]) => Number(code) !== expect)
    .reduce((sum, [, stat]) => sum + (stat as { count: number }).count, 0)
}

/** The scenario's requests, for a duration or a fixed amount. */
type LoadRun = { connections: number, duration?: number, amount?: number }

function loadOptions (url: string, scenario: Omit<Scenario, 'mode'>, run: LoadRun): autocannon.Options {
  return { url: url + scenario.path, method: scenario.method, headers: scenario.headers, body: scenario.body, ...run }
}

function load (url: string, scenario: Omit<Scenario, 'mode'>, run: LoadRun) {
  return autocannon(loadOptions(url, scenario, run))
}

/**
 * A load whose 2xx latencies are also kept one by one, as autocannon times them (milliseconds from
 * hrtime, fractional). Its own histogram has whole milliseconds, too coarse for a bound of 2x on a
 * p99 of 1 ms.
 */
async function loadTimed (url: string, scenario: Omit<Scenario, 'mode'>, run: LoadRun) {
  const latencies: number[] = []
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    autocannon(loadOptions(url, scenario, run), (err, done) => (err ? reject(err) : resolve(done))).on('response', (_client, statusCode, _bytes, responseTime) => {
      if (statusCode >= 200 && statusCode < 300) latencies.push(responseTime)
    })
  })
  latencies.sort((a, b) => a - b)
  const p99 = latencies.length === 0 ? Number.NaN : latencies[Math.min(latencies.length - 1, Math.ceil(latencies.length * 0.99) - 1)] as number
  return { result, p99Ms: Math.round(p99 * 100) / 100 }
}

async function measure (url: string, scenario: Omit<Scenario, 'mode'>, duration = DURATION) {
  const result = await load(url, scenario, { connections: CONNECTIONS, duration })
  return {
    // The median of the per-second request counts, and latency percentiles over every request.
    requestsPerSecond: result.requests.p50,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors + result.timeouts,
    unexpected: countUnexpected(result, scenario.expect)
  }
}

/** User + system CPU time of a process so far, µs (fields 14 and 15 of /proc/<pid>/stat, after the command name). */
async function cpuTimeUs (pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 1e6 / CLOCK_TICKS
}

function median (values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number
}

/** One run of the scenario's fixed number of requests: the server's CPU µs per request, and the answers that failed. */
async function cpuRun (pid: number, url: string, scenario: Omit<Scenario, 'mode'>) {
  const amount = scenario.cpuRequests ?? CPU_REQUESTS
  const before = await cpuTimeUs(pid)
  const result = await load(url, scenario, { connections: CPU_CONNECTIONS, amount })
  return { cpuUs: (await cpuTimeUs(pid) - before) / amount, failures: result.errors + result.timeouts + countUnexpected(result, scenario.expect) }
}

/** Server CPU per request: the median over CPU_RUNS runs. */
async function cpuPerRequest (pid: number, url: string, scenario: Omit<Scenario, 'mode'>) {
  const runs: number[] = []
  let failures = 0
  for (let i = 0; i < CPU_RUNS; i++) {
    const run = await cpuRun(pid, url, scenario)
    runs.push(run.cpuUs)
    failures += run.failures
  }
  return { cpuUs: median(runs), failures }
}

/** Warm-up, requests per second, then CPU per request (skipped for a cluster: its workers are other processes). */
async function bench (server: { proc: ChildProcess, url: string }, scenario: Omit<Scenario, 'mode'>, withCpu: boolean) {
  await measure(server.url, scenario, WARMUP)
  const m = await measure(server.url, scenario)
  const cpu = withCpu ? await cpuPerRequest(server.proc.pid as number, server.url, scenario) : { cpuUs: null, failures: 0 }
  console.log(`  ${scenario.name.padEnd(36)} ${Math.round(m.requestsPerSecond).toString().padStart(7)} req/s  p99 ${m.p99Ms} ms  ${cpu.cpuUs === null ? '' : `${cpu.cpuUs.toFixed(1)} µs CPU/request`}`)
  return { ...m, errors: m.errors + cpu.failures, cpuUs: cpu.cpuUs }
}

function environment (mode: Mode, dataDir: string, port: number): Record<string, string> {
  return {
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: 'info',
    DATA_DIR: dataDir,
    JWT_SECRET: 'bench-jwt-secret-0123456789abcdefghijklmnopq',
    KEY_HASH_SECRET: 'bench-key-hash-secret-0123456789abcdefghij',
    ...RAISED_TIERS,
    ...(mode === 'redis' ? { REDIS_URL, REDIS_PREFIX: `kwbench:${Date.now()}:` } : {}),
    ...(mode === 'metrics-off' ? { METRICS_ENABLED: 'false' } : {}),
    ...(mode === 'cluster' ? { WORKERS: String(availableParallelism()) } : {})
  }
}

interface StormResult {
  idleP99Ms: number
  stormP99Ms: number
  /** Held-key creations and reveals completed during the storm, and any that did not answer 2xx. */
  derivations: number
  derivationFailures: Record<string, number>
  health: Record<string, number>
  met: boolean
}

/**
 * Issue 16, item 5: verify p99 with STORM_CONCURRENCY held-key creations and reveals (each a scrypt
 * derivation) kept in flight, against the same verify load alone; health polled throughout.
 */
async function storm (url: string, s: Awaited<ReturnType<typeof seed>>): Promise<StormResult> {
  const passphrase = 'bench vault passphrase 1'
  const user = { authorization: `Bearer ${s.accessToken}`, 'content-type': 'application/json' }
  await api(url, 'PUT', '/api/vault/passphrase', { passphrase }, s.accessToken)
  const held = await api(url, 'POST', '/api/keys', { kind: 'held', name: 'storm', secret: 'sk_test_storm', passphrase }, s.accessToken)
  const verify = { method: 'POST' as const, path: '/api/keys/verify', headers: { authorization: `Bearer ${s.root}`, 'content-type': 'application/json' }, body: JSON.stringify({ key: s.valid }), expect: 200 }
  const verifyLoad = () => loadTimed(url, { name: 'verify', ...verify }, { connections: CPU_CONNECTIONS, duration: STORM_SECONDS })
  await verifyLoad()
  const idle = await verifyLoad()
  const state = { running: true }
  let derivations = 0
  const derivationFailures: Record<string, number> = {}
  const health: Record<string, number> = {}
  const count = (into: Record<string, number>, status: number) => { into[status] = (into[status] ?? 0) + 1 }
  // Half creations, half reveals: each one derives the vault key from the passphrase.
  const worker = async (i: number) => {
    while (state.running) {
      const res = i % 2 === 0
        ? await fetch(`${url}/api/keys`, { method: 'POST', headers: user, body: JSON.stringify({ kind: 'held', name: `storm ${i}`, secret: `sk_test_${i}`, passphrase }) })
        : await fetch(`${url}/api/keys/${held.key.id as string}/reveal`, { method: 'POST', headers: user, body: JSON.stringify({ passphrase }) })
      await res.arrayBuffer()
      derivations++
      if (res.status >= 300) count(derivationFailures, res.status)
    }
  }
  const poll = async () => {
    while (state.running) {
      const res = await fetch(`${url}/api/health`)
      await res.arrayBuffer()
      count(health, res.status)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  const background = [...Array.from({ length: STORM_CONCURRENCY }, (_, i) => worker(i)), poll()]
  const during = await verifyLoad()
  state.running = false
  await Promise.all(background)
  const failed = (r: autocannon.Result) => r.errors + r.timeouts + countUnexpected(r, 200)
  if (failed(idle.result) + failed(during.result) > 0) throw new Error(`storm: verify answered ${failed(idle.result) + failed(during.result)} errors or unexpected statuses`)
  const healthy = Object.keys(health).every((status) => status === '200')
  return {
    idleP99Ms: idle.p99Ms,
    stormP99Ms: during.p99Ms,
    derivations,
    derivationFailures,
    health,
    met: during.p99Ms <= 2 * idle.p99Ms && healthy && Object.keys(derivationFailures).length === 0
  }
}

/** The bodies Keyward answers, for the bare routes to answer too. */
async function captureFixtures (url: string, seeded: Awaited<ReturnType<typeof seed>>) {
  const backend = { authorization: `Bearer ${seeded.root}`, 'content-type': 'application/json' }
  return {
    verify: await (await fetch(`${url}/api/keys/verify`, { method: 'POST', headers: backend, body: JSON.stringify({ key: seeded.valid }) })).json(),
    list: await api(url, 'GET', '/api/keys?limit=20', undefined, seeded.accessToken),
    health: await api(url, 'GET', '/api/health')
  }
}

interface PairedResult {
  scenario: string
  reference: string
  /** Medians over the rounds, and the median of each round's own ratio. */
  cpuUs: number
  referenceCpuUs: number
  cpuRatio: number
  ratios: number[]
  failures: number
}

type Served = Awaited<ReturnType<typeof start>>
const withCpuTarget = (s: Scenario) => s.target?.cpuUs !== undefined || s.target?.cpuRatio !== undefined

/** Warms both sides, then alternates their CPU runs for PAIRED_ROUNDS rounds: a drifting host moves both sides of each ratio alike. */
async function alternate (mine: { server: Served, scenario: Omit<Scenario, 'mode'> }, theirs: { server: Served, scenario: Omit<Scenario, 'mode'>, name: string, reference: string }): Promise<PairedResult> {
  await measure(mine.server.url, mine.scenario, WARMUP)
  await measure(theirs.server.url, theirs.scenario, WARMUP)
  const a: number[] = []
  const b: number[] = []
  const ratios: number[] = []
  let failures = 0
  for (let round = 0; round < PAIRED_ROUNDS; round++) {
    const x = await cpuRun(mine.server.proc.pid as number, mine.server.url, mine.scenario)
    const y = await cpuRun(theirs.server.proc.pid as number, theirs.server.url, theirs.scenario)
    a.push(x.cpuUs)
    b.push(y.cpuUs)
    ratios.push(x.cpuUs / y.cpuUs)
    failures += x.failures + y.failures
  }
  const result = { scenario: mine.scenario.name, reference: theirs.reference, cpuUs: median(a), referenceCpuUs: median(b), cpuRatio: median(ratios), ratios, failures }
  console.log(`  ${mine.scenario.name.padEnd(36)} ${result.cpuUs.toFixed(1)} µs vs ${theirs.name} ${result.referenceCpuUs.toFixed(1)} µs: ${result.cpuRatio.toFixed(2)}x (rounds ${ratios.map((r) => r.toFixed(2)).join(' ')})`)
  return result
}

/** Keyward (embedded) and the bare routes served side by side, their CPU runs alternating. */
async function paired (): Promise<PairedResult[]> {
  const dataDir = await mkdtemp(join(tmpdir(), 'keyward-bench-'))
  const keyward = await start('server.ts', environment('embedded', dataDir, 0))
  let bare: Served | undefined
  try {
    const seeded = await seed(keyward.url)
    const file = join(dataDir, 'fixtures.json')
    await writeFile(file, JSON.stringify(await captureFixtures(keyward.url, seeded)))
    bare = await start('bench/baseline.ts', { BASELINE_SHAPE: 'bare', BASELINE_FIXTURES: file })
    const refs = references(true)
    const results: PairedResult[] = []
    for (const scenario of scenarios('embedded', seeded).filter(withCpuTarget)) {
      const reference = refs.find((r) => r.reference === scenario.reference)
      if (reference === undefined) continue
      results.push(await alternate({ server: keyward, scenario }, { server: bare, scenario: reference, name: reference.name, reference: reference.reference }))
    }
    return results
  } finally {
    if (bare !== undefined) await stop(bare.proc)
    await stop(keyward.proc)
    await rm(dataDir, { recursive: true, force: true })
  }
}

/**
 * Two Keyward servers side by side, same scenarios, CPU runs alternating: this checkout in
 * `mine` mode against `theirs` (another mode, or another checkout's folder).
 */
async function pairedKeywards (mine: Mode, theirs: { mode: Mode, folder?: string, name: string }, names: string[]): Promise<PairedResult[]> {
  const dirs = [await mkdtemp(join(tmpdir(), 'keyward-bench-')), await mkdtemp(join(tmpdir(), 'keyward-bench-'))] as const
  const servers: Served[] = []
  try {
    servers.push(await start('server.ts', environment(mine, dirs[0], 0)))
    servers.push(await start('server.ts', environment(theirs.mode, dirs[1], 0), theirs.folder))
    const [here, there] = servers as [Served, Served]
    const other = scenarios(theirs.mode, await seed(there.url))
    const results: PairedResult[] = []
    for (const scenario of scenarios(mine, await seed(here.url)).filter((s) => names.includes(s.name))) {
      const counterpart = other.find((s) => s.name === scenario.name) as Scenario
      results.push(await alternate({ server: here, scenario }, { server: there, scenario: counterpart, name: theirs.name, reference: theirs.name }))
    }
    return results
  } finally {
    for (const server of servers) await stop(server.proc)
    for (const dir of dirs) await rm(dir, { recursive: true, force: true })
  }
}

/** Keyward's scenarios in one mode; the first mode with a list also captures the bodies the bare routes answer. */
async function benchMode (mode: Mode, rows: Row[], fixtures: Record<string, unknown>, storms: Record<string, StormResult>) {
  const dataDir = await mkdtemp(join(tmpdir(), 'keyward-bench-'))
  // The cluster's workers share one port, so it is a fixed free one.
  const server = await start(mode === 'cluster' ? 'cluster.ts' : 'server.ts', environment(mode, dataDir, mode === 'cluster' ? await freePort() : 0))
  try {
    const seeded = await seed(server.url)
    if (fixtures.list === undefined && mode !== 'cluster' && mode !== 'metrics-off') Object.assign(fixtures, await captureFixtures(server.url, seeded))
    console.log(`${mode}:`)
    for (const scenario of scenarios(mode, seeded)) {
      const m = await bench(server, scenario, mode !== 'cluster')
      rows.push({ scenario: scenario.name, mode, ...m, ratio: null, cpuRatio: null, reference: scenario.reference ?? 'bare hello', target: '' })
    }
    if (mode === 'embedded' && STORM_CONCURRENCY > 0) {
      const result = await storm(server.url, seeded)
      storms[mode] = result
      console.log(`  held-key storm (${STORM_CONCURRENCY} creations/reveals in flight): verify p99 ${result.idleP99Ms} ms idle, ${result.stormP99Ms} ms during (${result.derivations} derivations, failures ${JSON.stringify(result.derivationFailures)}); health ${JSON.stringify(result.health)}: ${result.met ? 'met' : 'MISSED'} (p99 <= 2x idle, health 200)`)
    }
  } finally {
    await stop(server.proc)
    await rm(dataDir, { recursive: true, force: true })
  }
}

async function benchReferences (rows: Row[], fixtures: Record<string, unknown>) {
  const file = join(await mkdtemp(join(tmpdir(), 'keyward-bench-')), 'fixtures.json')
  await writeFile(file, JSON.stringify(fixtures))
  console.log('bare Fastify references:')
  for (const shape of ['bare', 'production'] as const) {
    const server = await start('bench/baseline.ts', { BASELINE_SHAPE: shape, BASELINE_FIXTURES: file })
    try {
      for (const reference of references(fixtures.list !== undefined).filter((r) => r.shape === shape)) {
        const m = await bench(server, reference, true)
        rows.push({ scenario: reference.name, mode: 'baseline', ...m, ratio: 1, cpuRatio: 1, reference: reference.reference, target: '' })
      }
    } finally {
      await stop(server.proc)
    }
  }
}

/** Ratios to each row's reference, and the targets met or missed. */
function judge (rows: Row[], all: Scenario[]) {
  const refs = new Map(rows.filter((r) => r.mode === 'baseline').map((r) => [r.reference, r]))
  for (const row of rows.filter((r) => r.mode !== 'baseline')) {
    const ref = refs.get(row.reference)
    if (ref === undefined) continue
    row.ratio = row.requestsPerSecond / ref.requestsPerSecond
    row.cpuRatio = row.cpuUs === null || ref.cpuUs === null ? null : row.cpuUs / ref.cpuUs
    const target = all.find((s) => s.name === row.scenario && s.mode === row.mode)?.target
    if (target === undefined) continue
    const checks: Array<[boolean, string]> = []
    if (target.ratio !== undefined) checks.push([row.ratio >= target.ratio, `>= ${target.ratio}x req/s`])
    if (target.p99Ms !== undefined) checks.push([row.p99Ms <= target.p99Ms, `p99 <= ${target.p99Ms} ms`])
    if (target.cpuUs !== undefined) checks.push([row.cpuUs !== null && row.cpuUs <= target.cpuUs, `CPU <= ${target.cpuUs} µs`])
    if (target.cpuRatio !== undefined) checks.push([row.cpuRatio !== null && row.cpuRatio <= target.cpuRatio, `CPU <= ${target.cpuRatio}x`])
    row.target = checks.map(([ok, what]) => `${ok ? 'met' : 'MISSED'} (${what})`).join(', ')
  }
}

function summarise (rows: Row[]) {
  const verify = (mode: string) => rows.find((r) => r.mode === mode && r.scenario.startsWith('verify (valid'))
  const single = verify('embedded')
  const many = verify('cluster')
  if (single !== undefined && many !== undefined) {
    console.log(`verify with 1 process: ${Math.round(single.requestsPerSecond)} req/s; with ${availableParallelism()} cluster workers: ${Math.round(many.requestsPerSecond)} req/s (x${(many.requestsPerSecond / single.requestsPerSecond).toFixed(2)})`)
  }
  const without = verify('metrics-off')
  if (single?.cpuUs != null && without?.cpuUs != null) {
    const cost = single.cpuUs / without.cpuUs - 1
    console.log(`metrics cost on verify: ${(cost * 100).toFixed(1)}% of CPU per request (target <= 5%): ${cost <= 0.05 ? 'met' : 'MISSED'}`)
  }
  // p99 at a fixed number of connections is bounded below by connections / throughput (Little's law),
  // so the bare POST's own p99 in this run says what this host allows.
  const bare = rows.find((r) => r.reference === 'bare POST' && r.mode === 'baseline')
  if (single !== undefined && bare !== undefined) {
    const floor = (rps: number) => (CONNECTIONS / rps * 1000).toFixed(1)
    console.log(`verify p99 ${single.p99Ms} ms at ${CONNECTIONS} connections (target <= 5 ms); the bare POST's p99 in this run: ${bare.p99Ms} ms. Mean latency is connections / req/s: ${floor(single.requestsPerSecond)} ms for verify, ${floor(bare.requestsPerSecond)} ms for the bare POST`)
  }
  const shared = verify('redis')
  if (single?.cpuUs != null && shared?.cpuUs != null) {
    const extra = shared.cpuUs / single.cpuUs - 1
    console.log(`Redis mode's extra CPU on verify: ${(extra * 100).toFixed(1)}% (target <= 10%): ${extra <= 0.1 ? 'met' : 'MISSED'}`)
  }
}

async function main () {
  const rows: Row[] = []
  const all: Scenario[] = []
  const fixtures: Record<string, unknown> = {}
  const storms: Record<string, StormResult> = {}
  console.log(`Keyward benchmark: ${DURATION}s per scenario, ${CONNECTIONS} connections; CPU per request over ${CPU_REQUESTS} requests x ${CPU_RUNS} runs, ${CPU_CONNECTIONS} connections; on ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`)
  console.log('Rate-limit tiers are raised for the bench (auth, key creation, heavy, general, verify failures), so the limiter does not refuse bench traffic.\n')
  for (const mode of MODES as Mode[]) await benchMode(mode, rows, fixtures, storms)
  await benchReferences(rows, fixtures)
  let pairs: PairedResult[] = []
  let against: PairedResult[] = []
  let redisPair: PairedResult | undefined
  if (PAIRED_ROUNDS > 0) {
    console.log(`paired CPU comparison (embedded, ${PAIRED_ROUNDS} rounds, Keyward and its bare route alternating):`)
    pairs = await paired()
    const valid = 'verify (valid, cached)'
    if (MODES.includes('redis')) {
      console.log(`Redis mode against embedded (verify, ${PAIRED_ROUNDS} rounds alternating; target <= 1.10):`)
      redisPair = (await pairedKeywards('redis', { mode: 'embedded', name: 'embedded' }, [valid]))[0]
    }
    if (AGAINST !== undefined) {
      // BENCH_AGAINST: another checkout (its folder, dependencies installed, e.g. a git worktree of an earlier commit).
      console.log(`this checkout against ${AGAINST} (embedded, ${PAIRED_ROUNDS} rounds alternating; below 1 is this checkout cheaper):`)
      // Key creation too: the one write path that every key change shares (the verifier forgets on it).
      against = await pairedKeywards('embedded', { mode: 'embedded', folder: AGAINST, name: AGAINST }, [...scenarios('embedded', NO_SEED).filter(withCpuTarget).map((x) => x.name), 'create key'])
      if (MODES.includes('redis')) {
        // What only Redis mode runs (the shared bucket's script per call) is paired in Redis mode.
        console.log(`this checkout against ${AGAINST} (Redis mode, ${PAIRED_ROUNDS} rounds alternating; below 1 is this checkout cheaper):`)
        against.push(...await pairedKeywards('redis', { mode: 'redis', folder: AGAINST, name: `${AGAINST} (Redis)` }, ['verify (per-key rate limit)']))
      }
    }
  }
  for (const mode of MODES as Mode[]) all.push(...scenarios(mode, NO_SEED))
  judge(rows, all)

  console.log('\n| scenario | mode | CPU µs/request | CPU ratio | req/s (median) | p50 ms | p99 ms | req/s ratio | reference | errors | unexpected status | target |')
  console.log('|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|')
  const fixed = (n: number | null, digits: number) => (n === null ? '' : n.toFixed(digits))
  for (const r of rows) {
    console.log(`| ${r.scenario} | ${r.mode} | ${fixed(r.cpuUs, 1)} | ${fixed(r.cpuRatio, 2)} | ${Math.round(r.requestsPerSecond)} | ${r.p50Ms} | ${r.p99Ms} | ${fixed(r.ratio, 2)} | ${r.reference} | ${r.errors} | ${r.unexpected} | ${r.target} |`)
  }
  await mkdir(join(ROOT, 'bench/results'), { recursive: true })
  const file = join(ROOT, 'bench/results', `${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
  await writeFile(file, JSON.stringify({
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
    durationSeconds: DURATION,
    connections: CONNECTIONS,
    cpu: { requests: CPU_REQUESTS, runs: CPU_RUNS, connections: CPU_CONNECTIONS, clockTicks: CLOCK_TICKS },
    raisedTiers: RAISED_TIERS,
    rows,
    paired: pairs,
    redisPaired: redisPair,
    against,
    storm: storms
  }, null, 2))
  console.log(`\nwritten to ${file}`)
  summarise(rows)
  for (const [mode, result] of Object.entries(storms)) {
    console.log(`held-key storm (${mode}): verify p99 ${result.idleP99Ms} -> ${result.stormP99Ms} ms (target <= 2x), health ${JSON.stringify(result.health)}: ${result.met ? 'met' : 'MISSED'}`)
  }
  // The paired comparison runs in embedded mode whatever BENCH_MODES says: judge it by embedded's targets.
  const embedded = scenarios('embedded', NO_SEED)
  for (const pair of pairs) {
    const target = embedded.find((s) => s.name === pair.scenario)?.target
    const checks: string[] = []
    if (target?.cpuUs !== undefined) checks.push(`${pair.cpuUs <= target.cpuUs ? 'met' : 'MISSED'} (CPU <= ${target.cpuUs} µs)`)
    if (target?.cpuRatio !== undefined) checks.push(`${pair.cpuRatio <= target.cpuRatio ? 'met' : 'MISSED'} (CPU <= ${target.cpuRatio}x)`)
    console.log(`paired: ${pair.scenario} ${pair.cpuUs.toFixed(1)} µs, ${pair.cpuRatio.toFixed(2)}x ${pair.reference}: ${checks.join(', ')}`)
  }
  if (redisPair !== undefined) console.log(`paired: verify with Redis ${redisPair.cpuUs.toFixed(1)} µs, ${redisPair.cpuRatio.toFixed(2)}x embedded: ${redisPair.cpuRatio <= 1.1 ? 'met' : 'MISSED'} (<= 1.10x)`)
  const failed = [...rows.filter((r) => r.errors > 0 || r.unexpected > 0).map((r) => `${r.mode}/${r.scenario}`), ...[...pairs, ...against, ...(redisPair === undefined ? [] : [redisPair])].filter((p) => p.failures > 0).map((p) => `paired/${p.scenario}`)]
  if (failed.length > 0) {
    console.error(`scenarios with errors or unexpected answers: ${failed.join(', ')}`)
    process.exitCode = 1
  }
}

await main()
