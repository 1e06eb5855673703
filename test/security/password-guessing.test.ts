import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { describe, it } from 'node:test'
import { KdfGate, kdfGate } from '../../plugins/app/kdf.ts'
import { createTestApp, registerUser } from '../helpers/app.ts'

const ERROR_KEYS = ['code', 'error', 'message', 'requestId', 'statusCode']

describe('password checks are bounded (issue 14, finding 5)', () => {
  it('DELETE /api/auth/me counts against the auth tier at its default size, shared with login', async (t) => {
    // AUTH_RATE_LIMIT_MAX at its default (10 per 15 minutes per IP): the test app raises it otherwise.
    const app = await createTestApp(t, { AUTH_RATE_LIMIT_MAX: '10' })
    const user = await registerUser(app.app) // the first attempt of the window
    const statuses: number[] = []
    for (let i = 0; i < 10; i++) {
      const res = await app.app.inject({ method: 'DELETE', url: '/api/auth/me', headers: user.headers, payload: { password: `wrong guess ${i}` } })
      statuses.push(res.statusCode)
    }
    assert.deepEqual(statuses, [...Array(9).fill(403), 429])
    const login = await app.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: user.email, password: user.password } })
    assert.equal(login.statusCode, 429, 'the same count covers login')
    assert.equal((await app.app.inject({ method: 'GET', url: '/api/auth/me', headers: user.headers })).statusCode, 200, 'nothing was deleted')
  })

  it('a gate runs at most `concurrency` derivations, queues up to `queueMax`, refuses past that, in order', async () => {
    const gate = new KdfGate(2, 2)
    let running = 0
    let peak = 0
    const release: Array<() => void> = []
    const order: number[] = []
    const work = (n: number) => gate.run(async () => {
      running++
      peak = Math.max(peak, running)
      await new Promise<void>((resolve) => release.push(resolve))
      running--
      order.push(n)
      return n
    })
    const accepted = [work(1), work(2), work(3), work(4)]
    await assert.rejects(work(5), (err: { statusCode: number, code: string, headers: Record<string, string> }) =>
      err.statusCode === 503 && err.code === 'SERVICE_BUSY' && err.headers['retry-after'] === '1')
    assert.equal(gate.queued, 2)
    while (order.length < 4) {
      await new Promise((resolve) => setImmediate(resolve))
      release.shift()?.()
    }
    assert.deepEqual(await Promise.all(accepted), [1, 2, 3, 4])
    assert.deepEqual(order, [1, 2, 3, 4])
    assert.equal(peak, 2)
    assert.equal(gate.queued, 0)
    // Slots are free again: the next derivation starts at once.
    const sixth = work(6)
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(release.length, 1)
    release.shift()?.()
    assert.equal(await sixth, 6)
  })

  it('a burst of logins at the default scrypt cost leaves the thread pool to others and sheds load with 503 Retry-After', async (t) => {
    const app = await createTestApp(t, { PASSWORD_HASH_COST: '15' })
    const user = await registerUser(app.app)
    let refusedDone = 0
    const burst = Array.from({ length: 80 }, (_, i) => app.app.inject({
      method: 'POST', url: '/api/auth/login', payload: { email: user.email, password: `wrong password ${i}` }
    }).then((res) => {
      if (res.statusCode === 401) refusedDone++
      return res
    }))
    // A file read needs the same thread pool: it must not wait behind the whole burst.
    await readFile(new URL(import.meta.url))
    const doneWhenReadFinished = refusedDone
    const answers = await Promise.all(burst)
    const busy = answers.filter((r) => r.statusCode === 503)
    assert.ok(busy.length > 0, 'past the queue, logins are refused')
    for (const res of busy) {
      assert.equal(res.json().code, 'SERVICE_BUSY')
      assert.equal(res.headers['retry-after'], '1')
      assert.deepEqual(Object.keys(res.json()).sort(), ERROR_KEYS)
    }
    assert.deepEqual(new Set(answers.map((r) => r.statusCode)), new Set([401, 503]))
    assert.ok(doneWhenReadFinished <= kdfGate.concurrency * 2,
      `the file read finished after ${doneWhenReadFinished} of ${answers.length - busy.length} password checks`)
    assert.equal(kdfGate.queued, 0)
  })
})
