import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { registerUser } from '../helpers/app.ts'
import { startKeyward, type RunningKeyward } from './keyward.ts'

let kw: RunningKeyward
before(async () => { kw = await startKeyward() })
after(async () => { await kw.close() })

test('a VALID answer is reused within the TTL; the cache is off unless asked for', async () => {
  const { secret } = await kw.issue({ scopes: ['read'] })
  const cached = kw.client({ cache: { ttlMs: 60_000 } })
  const first = await cached.verify(secret)
  assert.equal(await cached.verify(secret), first, 'served from the cache')
  assert.equal(await cached.verify(secret, { scopes: ['read'] }), first, 'the cached answer holds the scope')
  assert.equal((await cached.verify(secret, { scopes: ['write'] })).code, 'INSUFFICIENT_SCOPES', 'a scope the key lacks asks the server')
  const uncached = kw.client()
  assert.notEqual(await uncached.verify(secret), await uncached.verify(secret))
})

test('keys with a usage limit are never cached: the server counts every call', async () => {
  const { secret } = await kw.issue({ monthlyLimit: 1000 })
  const cached = kw.client({ cache: { ttlMs: 60_000 } })
  const used: number[] = []
  for (let i = 0; i < 5; i++) used.push((await cached.verify(secret)).usage!.used)
  assert.deepEqual(used, [1, 2, 3, 4, 5])
  // Concurrent calls of a metered key are each counted too, not shared.
  const together = await Promise.all([1, 2, 3, 4].map(() => cached.verify(secret)))
  assert.deepEqual(together.map((r) => r.usage!.used).sort((a, b) => a - b), [6, 7, 8, 9])
})

test('keys with a per-key rate limit are never cached', async () => {
  const { secret } = await kw.issue({ rateLimit: { limit: 2, windowMs: 60_000 } })
  const cached = kw.client({ cache: { ttlMs: 60_000 } })
  assert.deepEqual([(await cached.verify(secret)).code, (await cached.verify(secret)).code, (await cached.verify(secret)).code], ['VALID', 'VALID', 'RATE_LIMITED'])
})

test('a revocation is seen within the TTL (plus Keyward\'s own 1 s bound)', async () => {
  const { id, secret } = await kw.issue()
  const cached = kw.client({ cache: { ttlMs: 1000 } })
  assert.equal((await cached.verify(secret)).code, 'VALID')
  await kw.owner.api.revokeKey({ path: { id } })
  const revokedAt = Date.now()
  while ((await cached.verify(secret)).code === 'VALID') {
    assert.ok(Date.now() - revokedAt < 2000 + 300, 'still VALID past the bound')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
})

test('NOT_FOUND is remembered for its short TTL', async () => {
  // Another owner's key answers NOT_FOUND, exactly like an unknown one.
  const stranger = await registerUser(kw.test.app)
  const theirs = kw.client({ token: stranger.accessToken })
  const { secret } = await theirs.api.createKey({ body: { kind: 'issued', name: 'theirs' } })
  const cached = kw.client({ cache: { notFoundTtlMs: 60_000 } })
  const first = await cached.verify(secret!)
  assert.equal(first.code, 'NOT_FOUND')
  assert.equal(await cached.verify(secret!), first)
  assert.notEqual(await kw.client().verify(secret!), first, 'without the cache every call asks')
})

test('concurrent verifications of the same key share one request', async () => {
  const { secret } = await kw.issue()
  const client = kw.client()
  const answers = await Promise.all([1, 2, 3, 4, 5].map(() => client.verify(secret)))
  assert.ok(answers.every((a) => a === answers[0]))
  assert.notEqual(await client.verify(secret), answers[0], 'and only while it is in flight')
})
