import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { Keyward, KeywardError, UNREACHABLE } from '../../clients/node/src/index.ts'
import { startKeyward, type RunningKeyward } from './keyward.ts'

let kw: RunningKeyward
before(async () => { kw = await startKeyward() })
after(async () => { await kw.close() })

test('every key operation through the typed client', async () => {
  const { owner } = kw
  await owner.api.setVaultPassphrase({ body: { passphrase: 'vault passphrase for tests' } })
  assert.equal((await owner.api.getVault()).passphraseSet, true)

  const held = await owner.api.createKey({ body: { kind: 'held', name: 'stripe', secret: 'sk_live_abc', passphrase: 'vault passphrase for tests' } })
  assert.equal(held.key.kind, 'held')
  const issued = await owner.api.createKey({ body: { kind: 'issued', name: 'customer', scopes: ['read'], recoverable: true, passphrase: 'vault passphrase for tests' } })
  assert.match(issued.secret!, /^kw_/)
  const id = issued.key.id

  const list = await owner.api.listKeys({ query: { limit: 10, sort: '-createdAt' } })
  assert.deepEqual(list.items.map((k) => k.id).sort(), [held.key.id, id].sort())
  assert.equal(list.nextCursor, null)
  assert.equal((await owner.api.getKey({ path: { id } })).name, 'customer')
  assert.equal((await owner.api.updateKey({ path: { id }, body: { description: 'for the tests' } })).description, 'for the tests')
  assert.ok((await owner.api.getKeyStats()).total >= 2)
  assert.equal((await owner.api.revealKey({ path: { id }, body: { passphrase: 'vault passphrase for tests' } })).secret, issued.secret)

  const rotated = await owner.api.rotateKey({ path: { id }, body: { gracePeriodSeconds: 0, passphrase: 'vault passphrase for tests' } })
  assert.notEqual(rotated.secret, issued.secret)
  assert.equal((await owner.api.listKeyVersions({ path: { id } })).items.length, 2)

  const bulk = await owner.api.bulkKeys({ body: { action: 'addTags', ids: [id], tags: ['tested'] } })
  assert.equal(bulk.results.length, 1)
  await owner.api.revokeKey({ path: { id } })
  assert.equal((await owner.api.getKey({ path: { id } })).status, 'revoked')
})

test('verify and usage operations through the typed client', async () => {
  const { owner } = kw
  const { id, secret } = await kw.issue({ scopes: ['read'], monthlyLimit: 100 })
  const answer = await owner.api.verifyKey({ body: { key: secret, scopes: ['read'] } })
  assert.equal(answer.code, 'VALID')
  assert.equal(answer.usage?.used, 1)
  assert.equal((await owner.verify(secret, { scopes: ['write'] })).code, 'INSUFFICIENT_SCOPES')

  const series = await owner.api.getKeyUsage({ path: { id }, query: { granularity: 'day' } })
  assert.equal(series.keyId, id)
  assert.equal((await owner.api.getUsageSummary()).total.requests >= 0, true)

  const held = await owner.api.createKey({ body: { kind: 'held', name: 'provider', secret: 'sk_provider', passphrase: 'vault passphrase for tests' } })
  const recorded = await owner.api.recordKeyUsage({ path: { id: held.key.id }, headers: { 'idempotency-key': 'once' }, body: { count: 3 } })
  assert.equal(recorded.duplicate, false)
  const again = await owner.api.recordKeyUsage({ path: { id: held.key.id }, headers: { 'idempotency-key': 'once' }, body: { count: 3 } })
  assert.equal(again.duplicate, true)
})

test('a key with the keyward:verify scope verifies from a backend', async () => {
  const backendKey = await kw.issue({ scopes: ['keyward:verify'] })
  const customer = await kw.issue()
  const backend = kw.client({ token: backendKey.secret })
  assert.equal((await backend.verify(customer.secret)).code, 'VALID')
  await assert.rejects(backend.api.listKeys(), (error: KeywardError) => error.statusCode === 401 || error.statusCode === 403)
})

test('error answers throw one KeywardError with the code and request id', async () => {
  await assert.rejects(kw.owner.api.getKey({ path: { id: 'nope' } }), (error) => {
    assert.ok(error instanceof KeywardError)
    assert.equal(error.statusCode, 404)
    assert.equal(error.code, 'NOT_FOUND')
    assert.ok(error.requestId !== null && error.requestId.length > 0)
    return true
  })
  await assert.rejects(kw.client({ token: 'wrong' }).api.getMe(), (error: KeywardError) => error.statusCode === 401)
})

test('no answer at all is a KeywardError KEYWARD_UNREACHABLE, after one retry', async () => {
  const nowhere = new Keyward({ baseUrl: 'http://127.0.0.1:1', token: 't', timeoutMs: 500 })
  await assert.rejects(nowhere.verify('kw_x'), (error: KeywardError) => error.code === UNREACHABLE && error.unavailable)
  await nowhere.close()
})
