import assert from 'node:assert/strict'
import net from 'node:net'
import { after, before, describe, it } from 'node:test'
import { AuditChain } from '../../plugins/app/store/audit-chain.ts'
import { createSqliteStore } from '../../plugins/app/store/sqlite/index.ts'
import { TEST_SECRETS } from '../helpers/app.ts'
import { runToExit, startServer } from '../helpers/server.ts'
import { tempDir } from '../helpers/tmp.ts'

describe('the server process', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>
  before(async () => { tmp = await tempDir('e2e') })
  after(async () => { await tmp.remove() })

  it('serves health and docs, finishes an in-flight write on SIGTERM, exits 0, and reads it back after a restart', async () => {
    const server = await startServer({ DATA_DIR: tmp.dir })
    try {
      const health = await fetch(`${server.url}/api/health`)
      assert.equal(health.status, 200)
      assert.equal(((await health.json()) as { status: string }).status, 'ok')
      const docs = await fetch(`${server.url}/docs`)
      assert.equal(docs.status, 200)
      assert.match(await docs.text(), /swagger/i)

      // A registration whose body is still arriving when SIGTERM lands must still be answered and kept.
      const socket = net.connect(server.port, '127.0.0.1')
      await new Promise((resolve) => socket.once('connect', resolve))
      let response = ''
      socket.on('data', (c) => { response += c.toString() })
      const body = JSON.stringify({ email: 'inflight@example.com', password: 'written during shutdown' })
      socket.write(`POST /api/auth/register HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`)
      socket.write(body.slice(0, 10))
      await new Promise((resolve) => setTimeout(resolve, 150))
      const exit = server.stop('SIGTERM')
      await new Promise((resolve) => setTimeout(resolve, 300))
      socket.write(body.slice(10))
      const code = await exit
      await new Promise((resolve) => setTimeout(resolve, 50))
      assert.match(response, /^HTTP\/1\.1 201/, `the in-flight request got its answer: ${response.slice(0, 200)}`)
      assert.equal(code, 0)
      assert.ok(server.output.some((l) => l.includes('shutting down')))
    } finally {
      await server.stop('SIGKILL')
    }

    const again = await startServer({ DATA_DIR: tmp.dir })
    try {
      assert.equal((await fetch(`${again.url}/api/health`)).status, 200)
      const login = await fetch(`${again.url}/api/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'inflight@example.com', password: 'written during shutdown' })
      })
      assert.equal(login.status, 200, 'what was written before the restart is read back')
    } finally {
      assert.equal(await again.stop('SIGINT'), 0)
    }
    const store = createSqliteStore({ dataDir: tmp.dir, auditChain: new AuditChain(TEST_SECRETS.KEY_HASH_SECRET) })
    try {
      assert.equal(store.integrityCheck(), 'ok')
    } finally {
      await store.close()
    }
  })

  it('a bad setting stops start-up with one clear line', async () => {
    const result = await runToExit({ PORT: 'eighty', DATA_DIR: tmp.dir })
    assert.equal(result.code, 78)
    assert.equal(result.output.trim(), 'Invalid configuration: PORT must be integer (got "eighty")')
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
})
