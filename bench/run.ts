/**
 * npm run bench: autocannon against a bare Fastify baseline and Keyward's scenarios, in one run
 * on one machine, reporting medians and ratios to the baseline. The servers run in their own
 * processes; autocannon runs in this one.
 *
 *   BENCH_DURATION=10 BENCH_CONNECTIONS=100 BENCH_MODES=embedded,redis npm run bench
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'

const ROOT = fileURLToPath(new URL('../', import.meta.url))
const DURATION = Number(process.env.BENCH_DURATION ?? 10)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 100)
const MODES = (process.env.BENCH_MODES ?? 'embedded,metrics-off,cluster,redis').split(',')
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const WARMUP = Math.min(3, DURATION)

/** Every tier raised so the bench measures the work, not the limiter (stated in the report). */
const RAISED_TIERS = {
  AUTH_RATE_LIMIT_MAX: '1000000',
  KEY_CREATE_RATE_LIMIT_MAX: '1000000',
  HEAVY_RATE_LIMIT_MAX: '1000000',
  GENERAL_RATE_LIMIT_MAX: '1000000',
  VERIFY_FAILURE_LIMIT_MAX: '1000000000'
}

type Mode = 'embedded' | 'redis' | 'metrics-off' | 'cluster'

interface Scenario {
  name: string
  mode: 'baseline' | Mode
  method: 'GET' | 'POST'
  path: string
  headers?: Record<string, string>
  body?: string
  /** The answer every request must get (anything else counts as an error). */
  expect: number
  target?: { ratio: number, p99Ms?: number }
}

interface Row {
  scenario: string
  mode: string
  requestsPerSecond: number
  p50Ms: number
  p99Ms: number
  ratio: number | null
  errors: number
  unexpected: number
  target: string
}

function start (entry: string, env: Record<string, string>): Promise<{ proc: ChildProcess, url: string }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', entry], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${entry} did not start:\n${output}`)), 30_000)
    const onData = (chunk: Buffer) => {
      output += chunk.toString()
      const match = /listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)
      if (match) {
        clearTimeout(timer)
        resolve({ proc, url: match[1] as string })
      }
    }
    proc.stdout!.on('data', onData)
    proc.stderr!.on('data', onData)
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${entry} exited ${code}:\n${output}`)) })
  })
}

async function freePort (): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function stop (proc: ChildProcess) {
  if (proc.exitCode !== null) return
  const exited = new Promise((resolve) => proc.once('exit', resolve))
  proc.kill('SIGTERM')
  await exited
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

function scenarios (mode: Mode, s: Awaited<ReturnType<typeof seed>>): Scenario[] {
  const verify = (key: string) => JSON.stringify({ key })
  const backend = { authorization: `Bearer ${s.root}`, 'content-type': 'application/json' }
  const user = { authorization: `Bearer ${s.accessToken}` }
  const all: Scenario[] = [
    { name: 'verify (valid, cached)', mode, method: 'POST', path: '/api/keys/verify', headers: backend, body: verify(s.valid), expect: 200, target: mode === 'embedded' ? { ratio: 0.6, p99Ms: 5 } : { ratio: 0.55 } },
    { name: 'verify (malformed)', mode, method: 'POST', path: '/api/keys/verify', headers: backend, body: verify('kw_not-a-real-key'), expect: 200 },
    { name: 'verify (unknown key)', mode, method: 'POST', path: '/api/keys/verify', headers: backend, body: verify(s.unknown), expect: 200 },
    { name: 'verify (per-key rate limit)', mode, method: 'POST', path: '/api/keys/verify', headers: backend, body: verify(s.limited), expect: 200, target: mode === 'redis' ? { ratio: 0.35 } : undefined },
    { name: 'list keys (cached)', mode, method: 'GET', path: '/api/keys?limit=20', headers: user, expect: 200, target: mode === 'embedded' ? { ratio: 0.5 } : undefined },
    { name: 'create key', mode, method: 'POST', path: '/api/keys', headers: { ...user, 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'issued', name: 'bench' }), expect: 201 },
    { name: 'record usage', mode, method: 'POST', path: `/api/keys/${s.keyId}/usage`, headers: { ...user, 'content-type': 'application/json' }, body: JSON.stringify({ count: 1 }), expect: 201 },
    { name: 'health', mode, method: 'GET', path: '/api/health', expect: 200 }
  ]
  if (mode === 'metrics-off' || mode === 'cluster') return all.filter((x) => x.name.startsWith('verify (valid')).map((x) => ({ ...x, target: undefined }))
  return mode === 'redis' ? all.filter((x) => x.name.startsWith('verify (valid') || x.name.startsWith('verify (per-key') || x.name.startsWith('list')) : all
}

async function measure (url: string, scenario: Omit<Scenario, 'mode'>, duration = DURATION) {
  const result = await autocannon({
    url: url + scenario.path,
    method: scenario.method,
    headers: scenario.headers,
    body: scenario.body,
    connections: CONNECTIONS,
    duration
  })
  const unexpected = Object.entries(result.statusCodeStats ?? {})
    .filter(([code]) => Number(code) !== scenario.expect)
    .reduce((sum, [, stat]) => sum + (stat as { count: number }).count, 0)
  return {
    // The median of the per-second request counts, and latency percentiles over every request.
    requestsPerSecond: result.requests.p50,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors + result.timeouts,
    unexpected
  }
}

async function main () {
  const rows: Row[] = []
  console.log(`Keyward benchmark: ${DURATION}s per scenario, ${CONNECTIONS} connections, on ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`)
  console.log('Rate-limit tiers are raised for the bench (auth, key creation, heavy, general, verify failures), so the limiter does not refuse bench traffic.\n')

  const baseline = await start('bench/baseline.ts', {})
  let base: Awaited<ReturnType<typeof measure>>
  try {
    await measure(baseline.url, { name: 'warm-up', method: 'GET', path: '/', expect: 200 }, WARMUP)
    base = await measure(baseline.url, { name: 'baseline', method: 'GET', path: '/', expect: 200 })
  } finally {
    await stop(baseline.proc)
  }
  rows.push({ scenario: 'bare Fastify hello world', mode: 'baseline', ...base, ratio: 1, target: '' })

  for (const mode of MODES as Mode[]) {
    const dataDir = await mkdtemp(join(tmpdir(), 'keyward-bench-'))
    const env: Record<string, string> = {
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
      DATA_DIR: dataDir,
      JWT_SECRET: 'bench-jwt-secret-0123456789abcdefghijklmnopq',
      KEY_HASH_SECRET: 'bench-key-hash-secret-0123456789abcdefghij',
      ...RAISED_TIERS,
      ...(mode === 'redis' ? { REDIS_URL, REDIS_PREFIX: `kwbench:${Date.now()}:` } : {}),
      ...(mode === 'metrics-off' ? { METRICS_ENABLED: 'false' } : {}),
      // The cluster's workers share one port, so it is a fixed free one.
      ...(mode === 'cluster' ? { PORT: String(await freePort()), WORKERS: String(availableParallelism()) } : {})
    }
    const server = await start(mode === 'cluster' ? 'cluster.ts' : 'server.ts', env)
    try {
      const seeded = await seed(server.url)
      for (const scenario of scenarios(mode, seeded)) {
        await measure(server.url, scenario, WARMUP)
        const m = await measure(server.url, scenario)
        const ratio = m.requestsPerSecond / base.requestsPerSecond
        let target = ''
        if (scenario.target !== undefined) {
          const ok = ratio >= scenario.target.ratio && (scenario.target.p99Ms === undefined || m.p99Ms <= scenario.target.p99Ms)
          target = `${ok ? 'met' : 'MISSED'} (>= ${scenario.target.ratio}${scenario.target.p99Ms === undefined ? '' : `, p99 <= ${scenario.target.p99Ms} ms`})`
        }
        rows.push({ scenario: scenario.name, mode, ...m, ratio, target })
        console.log(`  ${mode.padEnd(8)} ${scenario.name.padEnd(28)} ${Math.round(m.requestsPerSecond).toString().padStart(7)} req/s  p99 ${m.p99Ms} ms`)
      }
    } finally {
      await stop(server.proc)
      await rm(dataDir, { recursive: true, force: true })
    }
  }

  console.log('\n| scenario | mode | req/s (median) | p50 ms | p99 ms | ratio to baseline | errors | unexpected status | target |')
  console.log('|---|---|---:|---:|---:|---:|---:|---:|---|')
  for (const r of rows) {
    console.log(`| ${r.scenario} | ${r.mode} | ${Math.round(r.requestsPerSecond)} | ${r.p50Ms} | ${r.p99Ms} | ${r.ratio === null ? '' : r.ratio.toFixed(2)} | ${r.errors} | ${r.unexpected} | ${r.target} |`)
  }
  await mkdir(join(ROOT, 'bench/results'), { recursive: true })
  const file = join(ROOT, 'bench/results', `${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
  await writeFile(file, JSON.stringify({
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
    durationSeconds: DURATION,
    connections: CONNECTIONS,
    raisedTiers: RAISED_TIERS,
    rows
  }, null, 2))
  console.log(`\nwritten to ${file}`)
  const single = rows.find((r) => r.mode === 'embedded' && r.scenario.startsWith('verify (valid'))
  const many = rows.find((r) => r.mode === 'cluster')
  if (single !== undefined && many !== undefined) {
    console.log(`verify with 1 process: ${Math.round(single.requestsPerSecond)} req/s; with ${availableParallelism()} cluster workers: ${Math.round(many.requestsPerSecond)} req/s (x${(many.requestsPerSecond / single.requestsPerSecond).toFixed(2)})`)
  }
  const withMetrics = rows.find((r) => r.mode === 'embedded' && r.scenario.startsWith('verify (valid'))
  const without = rows.find((r) => r.mode === 'metrics-off')
  if (withMetrics !== undefined && without !== undefined) {
    const cost = 1 - withMetrics.requestsPerSecond / without.requestsPerSecond
    console.log(`metrics cost on verify: ${(cost * 100).toFixed(1)}% of throughput (target <= 5%): ${cost <= 0.05 ? 'met' : 'MISSED'}`)
  }
  const failed = rows.filter((r) => r.errors > 0 || r.unexpected > 0)
  if (failed.length > 0) {
    console.error(`scenarios with errors or unexpected answers: ${failed.map((r) => `${r.mode}/${r.scenario}`).join(', ')}`)
    process.exitCode = 1
  }
}

await main()
