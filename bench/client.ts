/**
 * npm run bench:client: @keyward/client's middleware under autocannon. A Fastify app protected by
 * the plugin with a cache hit against the same app unprotected (target ≥ 0.8x), and with the
 * cache off against Keyward's own verify measured in the same run (target ≥ 0.8x); and the
 * client-side p99 of verify() on a cache hit (target < 0.1 ms). Each server is its own process.
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import autocannon from 'autocannon'
import { start, stop } from './processes.ts'
import { Keyward } from '../clients/node/src/index.ts'

const DURATION = Number(process.env.BENCH_DURATION ?? 10)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 100)

async function measure (url: string, options: { method?: 'GET' | 'POST', headers?: Record<string, string>, body?: string }) {
  await autocannon({ url, connections: CONNECTIONS, duration: Math.min(3, DURATION), ...options })
  const result = await autocannon({ url, connections: CONNECTIONS, duration: DURATION, ...options })
  const unexpected = Object.entries(result.statusCodeStats ?? {}).filter(([code]) => code !== '200').reduce((n, [, s]) => n + (s as { count: number }).count, 0)
  return { requestsPerSecond: result.requests.p50, p99Ms: result.latency.p99, errors: result.errors + result.timeouts + unexpected }
}

/** Client-side latency of verify() answered from the local cache. */
async function cacheHitP99 (url: string, token: string, key: string): Promise<number> {
  const client = new Keyward({ baseUrl: url, token, cache: { ttlMs: 60_000 } })
  await client.verify(key, { scopes: ['read'] })
  const samples = new Float64Array(200_000)
  for (let i = 0; i < samples.length; i++) {
    const t = performance.now()
    await client.verify(key, { scopes: ['read'] })
    samples[i] = performance.now() - t
  }
  await client.close()
  samples.sort()
  return samples[Math.floor(samples.length * 0.99)]!
}

async function main () {
  const dataDir = await mkdtemp(join(tmpdir(), 'keyward-bench-client-'))
  const keyward = await start('server.ts', {
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'info',
    DATA_DIR: dataDir,
    LOG_REQUESTS: 'false',
    JWT_SECRET: 'bench-jwt-secret-0123456789abcdefghijklmnop',
    KEY_HASH_SECRET: 'bench-key-hash-secret-0123456789abcdefghijk',
    GENERAL_RATE_LIMIT_MAX: '1000000',
    AUTH_RATE_LIMIT_MAX: '1000000',
    KEY_CREATE_RATE_LIMIT_MAX: '1000000'
  })
  const apps: ChildProcess[] = []
  try {
    const owner = new Keyward({ baseUrl: keyward.url })
    const { accessToken } = await owner.api.register({ body: { email: `bench-${Date.now()}@example.com`, password: 'benchmark password 1' } })
    owner.setToken(accessToken)
    const backend = (await owner.api.createKey({ body: { kind: 'issued', name: 'backend', scopes: ['keyward:verify'] } })).secret!
    const customer = (await owner.api.createKey({ body: { kind: 'issued', name: 'customer', scopes: ['read'] } })).secret!
    await owner.close()

    const rows: Record<string, Awaited<ReturnType<typeof measure>>> = {}
    rows['keyward verify'] = await measure(`${keyward.url}/api/keys/verify`, {
      method: 'POST', headers: { authorization: `Bearer ${backend}`, 'content-type': 'application/json' }, body: JSON.stringify({ key: customer, scopes: ['read'] })
    })
    for (const mode of ['unprotected', 'cached', 'uncached']) {
      const app = await start('bench/client-app.ts', { CLIENT_MODE: mode, KEYWARD_URL: keyward.url, KEYWARD_TOKEN: backend })
      apps.push(app.proc)
      rows[`app ${mode}`] = await measure(`${app.url}/data`, { headers: { authorization: `Bearer ${customer}` } })
      await stop(app.proc)
    }
    const p99 = await cacheHitP99(keyward.url, backend, customer)
    const cachedRatio = rows['app cached']!.requestsPerSecond / rows['app unprotected']!.requestsPerSecond
    const uncachedRatio = rows['app uncached']!.requestsPerSecond / rows['keyward verify']!.requestsPerSecond
    console.table(rows)
    console.log(JSON.stringify({
      cacheHitVsUnprotected: { ratio: Number(cachedRatio.toFixed(2)), target: '>= 0.8', met: cachedRatio >= 0.8 },
      cacheOffVsKeywardVerify: { ratio: Number(uncachedRatio.toFixed(2)), target: '>= 0.8', met: uncachedRatio >= 0.8 },
      verifyCacheHitP99Ms: { value: Number(p99.toFixed(4)), target: '< 0.1', met: p99 < 0.1 },
      durationSeconds: DURATION,
      connections: CONNECTIONS
    }, null, 2))
  } finally {
    await Promise.all(apps.map(stop))
    await stop(keyward.proc)
    await rm(dataDir, { recursive: true, force: true })
  }
}

await main()
