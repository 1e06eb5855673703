import assert from 'node:assert/strict'
import { once } from 'node:events'
import net from 'node:net'
import { networkInterfaces } from 'node:os'
import { after, before, describe, it } from 'node:test'
import { AuditChain } from '../../plugins/app/store/audit-chain.ts'
import { createSqliteStore } from '../../plugins/app/store/sqlite/index.ts'
import { TEST_SECRETS } from '../helpers/app.ts'
import { onScopeEnd } from '../helpers/scope.ts'
import { freePort, runToExit, startServer } from '../helpers/server.ts'
import { tempDir } from '../helpers/tmp.ts'
import { until } from '../helpers/until.ts'

describe('the server process', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>
  before(async () => { tmp = await tempDir('e2e') })
  after(async () => { await tmp.remove() })

  it('serves health and docs, finishes an in-flight write on SIGTERM, exits 0, and reads it back after a restart', async (ctx) => {
    // Request logging on: the log line of the request shows it is in flight before SIGTERM lands.
    const server = await startServer({ DATA_DIR: tmp.dir, LOG_REQUESTS: 'true' })
    onScopeEnd(ctx, () => server.stop('SIGKILL'))
    const health = await fetch(`${server.url}/api/health`)
    assert.equal(health.status, 200)
    assert.equal(((await health.json()) as { status: string }).status, 'ok')
    const docs = await fetch(`${server.url}/docs`)
    assert.equal(docs.status, 200)
    assert.match(await docs.text(), /swagger/i)

    // A registration whose body is still arriving when SIGTERM lands must still be answered and kept.
    const socket = net.connect(server.port, '127.0.0.1')
    onScopeEnd(ctx, () => socket.destroy())
    await once(socket, 'connect')
    let response = ''
    socket.on('data', (c) => { response += c.toString() })
    // Closed once the server has exited; a reset shows as a missing answer below, not as a throw here.
    socket.on('error', () => {})
    const answered = new Promise((resolve) => socket.once('close', resolve))
    const body = JSON.stringify({ email: 'inflight@example.com', password: 'written during shutdown' })
    socket.write(`POST /api/auth/register HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`)
    socket.write(body.slice(0, 10))
    const logged = (text: string) => server.output.some((l) => l.includes(text))
    await until(() => logged('"msg":"incoming request"') && logged('"url":"/api/auth/register"'), 5000, 'the server has the registration in flight')
    const exit = server.stop('SIGTERM')
    await until(() => logged('shutting down'), 5000, 'the server starts shutting down')
    socket.write(body.slice(10))
    const code = await exit
    await answered
    assert.match(response, /^HTTP\/1\.1 201/, `the in-flight request got its answer: ${response.slice(0, 200)}`)
    assert.equal(code, 0)

    const again = await startServer({ DATA_DIR: tmp.dir })
    onScopeEnd(ctx, () => again.stop('SIGKILL'))
    assert.equal((await fetch(`${again.url}/api/health`)).status, 200)
    const login = await fetch(`${again.url}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'inflight@example.com', password: 'written during shutdown' })
    })
    assert.equal(login.status, 200, 'what was written before the restart is read back')
    assert.equal(await again.stop('SIGINT'), 0)
    const store = createSqliteStore({ dataDir: tmp.dir, auditChain: new AuditChain(TEST_SECRETS.KEY_HASH_SECRET) })
    onScopeEnd(ctx, () => store.close())
    assert.equal(store.integrityCheck(), 'ok')
  })

  it('a bad setting stops start-up with one clear line', async () => {
    const result = await runToExit({ PORT: 'eighty', DATA_DIR: tmp.dir })
    assert.equal(result.code, 78)
    assert.equal(result.output.trim(), 'Invalid configuration: PORT must be an integer from 0 to 65535 (got "eighty")')
  })

  it('a missing secret stops a production start-up', async () => {
    const result = await runToExit({ NODE_ENV: 'production', DATA_DIR: tmp.dir, JWT_SECRET: '' })
    assert.equal(result.code, 78)
    assert.match(result.output.trim(), /^Invalid configuration: JWT_SECRET is required in production/)
  })

  it('an unreachable MongoDB stops start-up within its bound, with one line and no hanging client', async () => {
    const result = await runToExit({
      NODE_ENV: 'test', DATA_DIR: tmp.dir, MONGODB_URI: 'mongodb://127.0.0.1:9/keyward', MONGODB_CONNECT_TIMEOUT_MS: '1000'
    })
    assert.equal(result.code, 1)
    assert.ok(result.ms < 10_000, `exited after ${result.ms} ms`)
    assert.match(result.output.trim(), /^Keyward could not start: MongoDB at MONGODB_URI is unreachable/)
  })

  it('an unreachable Redis stops start-up with one clear line', async () => {
    const result = await runToExit({ NODE_ENV: 'test', DATA_DIR: tmp.dir, REDIS_URL: 'redis://127.0.0.1:9' })
    assert.equal(result.code, 1)
    assert.match(result.output, /Keyward could not start: Redis at REDIS_URL is unreachable/)
  })

  it('a refused setting is one line naming the variable and its allowed values, exit 78, nothing else printed', async () => {
    const port = String(await freePort())
    const cases: Array<[Record<string, string>, string]> = [
      [{ TRUST_PROXY: '10.0.0.0/33' }, 'Invalid configuration: TRUST_PROXY entry "10.0.0.0/33" is not allowed: TRUST_PROXY must be false, true, a hop count, or a comma-separated list of loopback, linklocal, uniquelocal and IPv4 or IPv6 addresses, optionally with a /prefix (/1 to /32 for IPv4, /1 to /128 for IPv6)'],
      [{ JOBS_TZ: 'Mars/Base' }, 'Invalid configuration: JOBS_TZ must be an IANA time zone such as UTC, Europe/Paris or America/New_York (got "Mars/Base")'],
      [{ PORT: port, METRICS_PORT: port }, `Invalid configuration: METRICS_PORT must be 0 (off) or a port other than PORT, from 1 to 65535 (both are ${port})`],
      [{ LOG_LEVEL: 'verbose' }, 'Invalid configuration: LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent (got "verbose")'],
      [{ NODE_ENV: 'staging' }, 'Invalid configuration: NODE_ENV must be one of development, production, test (got "staging")']
    ]
    for (const [env, line] of cases) {
      const result = await runToExit({ NODE_ENV: 'production', DATA_DIR: tmp.dir, ...env })
      assert.deepEqual({ code: result.code, output: result.output }, { code: 78, output: `${line}\n` }, JSON.stringify(env))
    }
  })

  it('a port another process holds is one line naming PORT or METRICS_PORT, exit 1', async (ctx) => {
    const holder = net.createServer().listen(0, '127.0.0.1')
    onScopeEnd(ctx, () => { holder.close() })
    await once(holder, 'listening')
    const held = (holder.address() as net.AddressInfo).port
    const env = { NODE_ENV: 'production', DATA_DIR: tmp.dir, LOG_LEVEL: 'error' }
    const api = await runToExit({ ...env, PORT: String(held) })
    assert.deepEqual({ code: api.code, output: api.output }, { code: 1, output: `Keyward could not start: PORT=${held} on 127.0.0.1 is already in use by another process: stop it or choose another PORT\n` })
    const metrics = await runToExit({ ...env, METRICS_PORT: String(held) })
    assert.deepEqual({ code: metrics.code, output: metrics.output }, { code: 1, output: `Keyward could not start: METRICS_PORT=${held} on 127.0.0.1 is already in use by another process: stop it or choose another METRICS_PORT\n` })
  })

  describe('listens on loopback unless HOST is set, and says so', () => {
    // An address of this machine that is not loopback: what another machine would connect to.
    const outside = Object.values(networkInterfaces()).flat().find((a) => a !== undefined && !a.internal && a.family === 'IPv4')?.address
    const reaches = (host: string, port: number) => new Promise<boolean>((resolve) => {
      const socket = net.connect(port, host)
      socket.once('connect', () => { socket.destroy(); resolve(true) })
      socket.once('error', () => resolve(false))
    })

    it('by default: the API and the METRICS_PORT listener take connections from this machine only', { skip: outside === undefined && 'this machine has no non-loopback IPv4 address' }, async (ctx) => {
      const metricsPort = await freePort()
      const server = await startServer({ DATA_DIR: tmp.dir, HOST: '', METRICS_PORT: String(metricsPort) })
      onScopeEnd(ctx, () => server.stop('SIGKILL'))
      assert.ok(server.output.some((l) => l.includes(`"msg":"Keyward listening at http://127.0.0.1:${server.port} (loopback only: set HOST=0.0.0.0 to accept connections from other machines)"`)), server.output.join('\n'))
      assert.ok(server.output.some((l) => l.includes(`"msg":"metrics listening at http://127.0.0.1:${metricsPort}/metrics, no token (loopback only: set METRICS_HOST to expose them, with METRICS_TOKEN)"`)), server.output.join('\n'))
      assert.equal(await reaches('127.0.0.1', server.port), true)
      assert.equal(await reaches(outside as string, server.port), false, 'the API refuses other machines')
      assert.equal(await reaches('127.0.0.1', metricsPort), true)
      assert.equal(await reaches(outside as string, metricsPort), false, 'the metrics listener refuses other machines')
      assert.equal(await server.stop(), 0)
    })

    it('HOST=0.0.0.0 and METRICS_HOST=0.0.0.0 take connections on every interface, and the start-up lines say so', { skip: outside === undefined && 'this machine has no non-loopback IPv4 address' }, async (ctx) => {
      const metricsPort = await freePort()
      const server = await startServer({ DATA_DIR: tmp.dir, HOST: '0.0.0.0', METRICS_PORT: String(metricsPort), METRICS_HOST: '0.0.0.0' }, 'server.ts', /Keyward listening at http:\/\/127\.0\.0\.1:(\d+) \(HOST=0\.0\.0\.0: every interface\)/)
      onScopeEnd(ctx, () => server.stop('SIGKILL'))
      assert.ok(server.output.some((l) => l.includes('"level":40') && l.includes(`metrics listening at http://0.0.0.0:${metricsPort}/metrics with no token: anyone who can reach METRICS_HOST=0.0.0.0 reads them; set METRICS_TOKEN`)), server.output.join('\n'))
      assert.equal(await reaches(outside as string, server.port), true)
      assert.equal(await reaches(outside as string, metricsPort), true)
      assert.equal(await server.stop(), 0)
    })
  })
})
