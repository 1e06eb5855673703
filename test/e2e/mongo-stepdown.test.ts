import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import { MongoClient } from 'mongodb'
import { createTestApp, registerUser, type TestApp } from '../helpers/app.ts'

// Issue 17: the replica set's primary steps down under traffic. No acknowledged write is lost,
// every request is answered (reads and verification keep answering), writes succeed or get
// 503 STORE_UNAVAILABLE with Retry-After, and nothing is a 500.

const uri = process.env.MONGODB_URI
const STEP_DOWN_SECONDS = 5
const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Until the set has a writable primary again (a one-node set re-elects itself once the step-down period ends). */
async function primaryBack (client: MongoClient, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const hello = await client.db('admin').command({ hello: 1 }).catch(() => null)
    if (hello?.isWritablePrimary === true) return
    await wait(250)
  }
  throw new Error('no writable primary within a minute of the step-down')
}

describe('MongoDB primary step-down under traffic', { skip: uri === undefined ? 'MONGODB_URI is not set: no replica set to step down' : false, timeout: 120_000 }, () => {
  let t: TestApp
  let admin: MongoClient
  const database = `keyward_stepdown_${randomBytes(6).toString('hex')}`
  before(async () => {
    t = await createTestApp({ MONGODB_URI: uri as string, MONGODB_DB: database })
    admin = new MongoClient(uri as string, { serverSelectionTimeoutMS: 5000 })
    await admin.connect()
  })
  after(async () => {
    await primaryBack(admin).catch(() => {})
    await t?.close()
    await admin?.db(database).dropDatabase().catch(() => {})
    await admin?.close()
  })

  it('reads and verification keep answering, writes succeed or answer 503 STORE_UNAVAILABLE, never 500; every acknowledged write is kept', async () => {
    const user = await registerUser(t.app)
    const create = async (name: string) => t.app.inject({ method: 'POST', url: '/api/keys', headers: user.headers, payload: { kind: 'issued', name } })
    const root = (await create('root')).json() as { secret: string }
    const target = (await create('target')).json() as { secret: string }
    const statuses = new Map<string, number>()
    const broken: string[] = []
    const acknowledged: string[] = []
    const note = (kind: string, res: { statusCode: number, headers: Record<string, unknown>, body: string }) => {
      statuses.set(`${kind} ${res.statusCode}`, (statuses.get(`${kind} ${res.statusCode}`) ?? 0) + 1)
      if (res.statusCode === 503) {
        if (JSON.parse(res.body).code !== 'STORE_UNAVAILABLE' || res.headers['retry-after'] === undefined) broken.push(`${kind}: ${res.body}`)
      } else if (res.statusCode >= 500) {
        broken.push(`${kind} ${res.statusCode}: ${res.body}`)
      }
    }

    const load = { running: true }
    const traffic = (async () => {
      for (let i = 0; load.running; i++) {
        const write = await create(`k${i}`)
        note('write', write)
        if (write.statusCode === 201) acknowledged.push((write.json() as { key: { id: string } }).key.id)
        note('read', await t.app.inject({ method: 'GET', url: '/api/keys?limit=5', headers: user.headers }))
        note('verify', await t.app.inject({ method: 'POST', url: '/api/keys/verify', headers: { authorization: `Bearer ${root.secret}` }, payload: { key: target.secret } }))
        await wait(20)
      }
    })()

    await wait(1000)
    // Closing connections is how a step-down answers; the command itself may fail with them.
    await admin.db('admin').command({ replSetStepDown: STEP_DOWN_SECONDS, secondaryCatchUpPeriodSecs: 1, force: true }).catch(() => {})
    await wait(STEP_DOWN_SECONDS * 1000)
    await primaryBack(admin)
    await wait(1000)
    load.running = false
    await traffic

    assert.deepEqual(broken, [], `every failure is a 503 STORE_UNAVAILABLE with Retry-After: ${JSON.stringify([...statuses])}`)
    for (const kind of ['write', 'read', 'verify']) {
      assert.ok([...statuses.keys()].some((s) => s.startsWith(`${kind} 2`)), `${kind}s succeeded around the step-down: ${JSON.stringify([...statuses])}`)
    }
    assert.ok(acknowledged.length > 0)
    for (const id of acknowledged) assert.ok(await t.app.store.getKey(user.user.id, id), `acknowledged key ${id} is kept`)
  })
})
