import assert from 'node:assert/strict'
import { it } from 'node:test'
import { SqliteStore } from '../../plugins/app/store/sqlite.ts'
import { startServer } from '../helpers/server.ts'
import { tempDir } from '../helpers/tmp.ts'

it('kill -9 mid-stream loses no acknowledged write: keys, rotations and usage survive, the audit chain verifies, the file is sound', async () => {
  const tmp = await tempDir('crash')
  const env = { DATA_DIR: tmp.dir, GENERAL_RATE_LIMIT_MAX: '10000000', KEY_CREATE_RATE_LIMIT_MAX: '1000000', HEAVY_RATE_LIMIT_MAX: '1000000' }
  const email = 'crash@example.com'
  const password = 'crash test password'
  try {
    const server = await startServer(env)
    const json = { 'content-type': 'application/json' }
    const register = await fetch(`${server.url}/api/auth/register`, { method: 'POST', headers: json, body: JSON.stringify({ email, password }) })
    const token = ((await register.json()) as { accessToken: string }).accessToken
    const auth = { ...json, authorization: `Bearer ${token}` }

    const created: string[] = []
    const rotated = new Map<string, number>()
    let usage = 0
    const control = { stop: false }
    const stream = async (lane: number) => {
      for (let i = 0; !control.stop; i++) {
        try {
          if (i % 3 === 0 || created.length === 0) {
            const res = await fetch(`${server.url}/api/keys`, { method: 'POST', headers: auth, body: JSON.stringify({ kind: 'issued', name: `lane ${lane} #${i}` }) })
            if (res.status === 201) created.push(((await res.json()) as { key: { id: string } }).key.id)
          } else if (i % 3 === 1) {
            const id = created[created.length - 1] as string
            const res = await fetch(`${server.url}/api/keys/${id}/rotate`, { method: 'POST', headers: auth, body: '{}' })
            if (res.status === 200) rotated.set(id, ((await res.json()) as { key: { version: number } }).key.version)
          } else {
            const id = created[0] as string
            const res = await fetch(`${server.url}/api/keys/${id}/usage`, { method: 'POST', headers: auth, body: JSON.stringify({ count: 1 }) })
            if (res.status === 201) usage++
          }
        } catch {
          return // the server is gone: whatever was not answered was not acknowledged
        }
      }
    }
    const lanes = [stream(1), stream(2), stream(3)]
    await new Promise((resolve) => setTimeout(resolve, 1500))
    server.proc.kill('SIGKILL')
    control.stop = true
    await Promise.all(lanes)
    await server.stop('SIGKILL')
    assert.ok(created.length > 10, `${created.length} keys acknowledged before the crash`)

    const again = await startServer(env)
    try {
      const login = await fetch(`${again.url}/api/auth/login`, { method: 'POST', headers: json, body: JSON.stringify({ email, password }) })
      const headers = { authorization: `Bearer ${((await login.json()) as { accessToken: string }).accessToken}` }
      for (const id of created) {
        const res = await fetch(`${again.url}/api/keys/${id}`, { headers })
        assert.equal(res.status, 200, `acknowledged key ${id} is there`)
        const version = ((await res.json()) as { version: number }).version
        assert.ok(version >= (rotated.get(id) ?? 1), `key ${id} keeps its acknowledged rotation`)
      }
      const summary = (await (await fetch(`${again.url}/api/usage/summary`, { headers })).json()) as { total: { requests: number } }
      assert.ok(summary.total.requests >= usage, `${summary.total.requests} usage records kept of ${usage} acknowledged`)
      const chain = (await (await fetch(`${again.url}/api/audit/verify`, { headers })).json()) as { valid: boolean, events: number }
      assert.equal(chain.valid, true)
      assert.ok(chain.events >= created.length + rotated.size)
      console.log(`crash durability: ${created.length} keys, ${rotated.size} rotations, ${usage} usage records acknowledged before kill -9; all present after restart; audit chain of ${chain.events} events verifies`)
    } finally {
      await again.stop('SIGTERM')
    }
    const store = new SqliteStore({ dataDir: tmp.dir })
    try {
      assert.equal(store.integrityCheck(), 'ok')
    } finally {
      await store.close()
    }
  } finally {
    await tmp.remove()
  }
})
