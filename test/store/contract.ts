import assert from 'node:assert/strict'
import { describe, it, before, after } from 'node:test'
import { newId } from '../../plugins/app/store/ids.ts'
import { DuplicateError, type NewKey, type Store } from '../../plugins/app/store/types.ts'

export interface StoreHarness {
  store: Store
  /** Opens a second store over the same data, to prove set-up is idempotent and data persists. */
  reopen (): Promise<Store>
  cleanup (): Promise<void>
}

let counter = 0
function email () {
  counter++
  return `user${counter}-${newId()}@example.com`
}

// Fixtures get strictly increasing creation times so creation order is also sort order.
let clock = Date.now()

export function keyFixture (overrides: Partial<NewKey> = {}): NewKey {
  const createdAt = ++clock
  const id = newId(createdAt)
  return {
    id,
    createdAt,
    kind: 'issued',
    name: `key ${id}`,
    service: null,
    description: null,
    environment: 'development',
    tags: [],
    scopes: [],
    metadata: {},
    prefix: 'kw_',
    start: 'kw_abcd',
    hash: `hash-${id}`,
    version: 1,
    status: 'active',
    expiresAt: null,
    rotationIntervalDays: null,
    rotationDueAt: null,
    monthlyLimit: null,
    rateLimit: null,
    ...overrides
  }
}

/** The behaviour every Store adapter must have; run against SQLite always and MongoDB when configured. */
export function storeContract (name: string, open: () => Promise<StoreHarness>, options: { skip?: boolean | string } = {}) {
  describe(`Store contract: ${name}`, { skip: options.skip }, () => {
    let h: StoreHarness
    let store: Store

    before(async () => {
      h = await open()
      store = h.store
    })
    after(async () => { await h?.cleanup() })

    const newUser = (overrides: { role?: 'user' | 'admin' } = {}) =>
      store.createUser({ email: email(), name: 'Ada', role: overrides.role ?? 'user', passwordHash: 'scrypt$hash' })

    describe('set-up', () => {
      it('init is idempotent and data survives a reopen', async () => {
        const user = await newUser()
        await store.init()
        await store.init()
        const again = await h.reopen()
        try {
          await again.init()
          assert.deepEqual(await again.getUser(user.id), user)
        } finally {
          await again.close()
        }
      })

      it('ping reports a reachable store', async () => {
        const health = await store.ping()
        assert.equal(health.ok, true)
        assert.ok(health.latencyMs >= 0)
      })
    })

    describe('users', () => {
      it('creates, reads by id and email, updates and deletes', async () => {
        const user = await newUser()
        assert.match(user.id, /^[0-9a-f]{24}$/)
        assert.deepEqual(await store.getUser(user.id), user)
        assert.deepEqual(await store.findUserByEmail(user.email), user)
        const updated = await store.updateUser(user.id, { name: 'Grace', role: 'admin', passwordHash: 'new' })
        assert.equal(updated?.name, 'Grace')
        assert.equal(updated?.role, 'admin')
        assert.equal(updated?.passwordHash, 'new')
        assert.equal(updated?.email, user.email)
        assert.ok((updated?.updatedAt ?? 0) >= user.updatedAt)
        assert.equal(await store.deleteUser(user.id), true)
        assert.equal(await store.getUser(user.id), null)
        assert.equal(await store.findUserByEmail(user.email), null)
        assert.equal(await store.deleteUser(user.id), false)
      })

      it('rejects a duplicate email with DuplicateError', async () => {
        const user = await newUser()
        await assert.rejects(
          store.createUser({ email: user.email, name: null, role: 'user', passwordHash: 'x' }),
          (err: unknown) => err instanceof DuplicateError && err.field === 'email'
        )
      })

      it('answers null for unknown users', async () => {
        assert.equal(await store.getUser(newId()), null)
        assert.equal(await store.findUserByEmail('nobody@example.com'), null)
        assert.equal(await store.updateUser(newId(), { name: 'x' }), null)
      })

      it('deleting a user removes what the user owns and nothing of others', async () => {
        const a = await newUser()
        const b = await newUser()
        const keyA = await store.createKey(a.id, keyFixture())
        const keyB = await store.createKey(b.id, keyFixture())
        await store.createSession({ userId: a.id, expiresAt: Date.now() + 60_000, userAgent: null, ip: null }, `rt-${newId()}`)
        const sessionB = await store.createSession({ userId: b.id, expiresAt: Date.now() + 60_000, userAgent: null, ip: null }, `rt-${newId()}`)
        await store.deleteUser(a.id)
        assert.equal(await store.getKey(a.id, keyA.id), null)
        assert.equal(await store.findCredentialByHash(keyA.hash as string), null)
        assert.deepEqual(await store.listSessions(a.id), [])
        assert.deepEqual(await store.getKey(b.id, keyB.id), keyB)
        assert.deepEqual(await store.getSession(b.id, sessionB.id), sessionB)
      })
    })

    describe('sessions and refresh tokens', () => {
      it('rotates a refresh token once, then detects reuse and revokes the session', async () => {
        const user = await newUser()
        const t0 = Date.now()
        const session = await store.createSession({ userId: user.id, expiresAt: t0 + 60_000, userAgent: 'test', ip: '127.0.0.1' }, 'rt-1-' + user.id)
        assert.deepEqual(await store.getSession(user.id, session.id), session)

        const first = await store.rotateRefreshToken('rt-1-' + user.id, 'rt-2-' + user.id, t0 + 1)
        assert.equal(first.status, 'rotated')
        assert.equal(first.status === 'rotated' && first.session.id, session.id)

        const reuse = await store.rotateRefreshToken('rt-1-' + user.id, 'rt-3-' + user.id, t0 + 2)
        assert.equal(reuse.status, 'reused')
        assert.equal((await store.getSession(user.id, session.id))?.revokedAt, t0 + 2)

        // the newest token of a revoked family is dead too
        const after = await store.rotateRefreshToken('rt-2-' + user.id, 'rt-4-' + user.id, t0 + 3)
        assert.equal(after.status, 'invalid')
      })

      it('refuses unknown and expired tokens', async () => {
        const user = await newUser()
        assert.deepEqual(await store.rotateRefreshToken('nope', 'x', Date.now()), { status: 'invalid' })
        const t0 = Date.now()
        await store.createSession({ userId: user.id, expiresAt: t0 + 10, userAgent: null, ip: null }, 'rt-exp-' + user.id)
        const late = await store.rotateRefreshToken('rt-exp-' + user.id, 'rt-exp2-' + user.id, t0 + 11)
        assert.equal(late.status, 'invalid')
      })

      it('revokes one session or all but one, scoped to the owner', async () => {
        const a = await newUser()
        const b = await newUser()
        const exp = Date.now() + 60_000
        const s1 = await store.createSession({ userId: a.id, expiresAt: exp, userAgent: null, ip: null }, 'rt-s1-' + a.id)
        const s2 = await store.createSession({ userId: a.id, expiresAt: exp, userAgent: null, ip: null }, 'rt-s2-' + a.id)
        const s3 = await store.createSession({ userId: a.id, expiresAt: exp, userAgent: null, ip: null }, 'rt-s3-' + a.id)
        const sb = await store.createSession({ userId: b.id, expiresAt: exp, userAgent: null, ip: null }, 'rt-sb-' + b.id)

        assert.equal(await store.revokeSession(b.id, s1.id, 5), false, 'B cannot revoke A\'s session')
        assert.equal(await store.getSession(b.id, s1.id), null, 'B cannot read A\'s session')
        assert.equal(await store.revokeSession(a.id, s1.id, 5), true)
        assert.equal(await store.revokeSession(a.id, s1.id, 6), false, 'already revoked')
        assert.equal(await store.revokeSessions(a.id, 7, s2.id), 1)
        assert.equal((await store.getSession(a.id, s2.id))?.revokedAt, null)
        assert.equal((await store.getSession(a.id, s3.id))?.revokedAt, 7)
        assert.equal(await store.revokeSessions(a.id, 8), 1)
        assert.equal((await store.getSession(b.id, sb.id))?.revokedAt, null, 'B untouched')
        const listed = await store.listSessions(a.id)
        assert.deepEqual(listed.map((s) => s.id).sort(), [s1.id, s2.id, s3.id].sort())
      })
    })

    describe('keys', () => {
      it('creates and reads a key with every field intact', async () => {
        const user = await newUser()
        const fixture = keyFixture({
          kind: 'held',
          hash: null,
          service: 'stripe',
          description: 'payments',
          environment: 'production',
          tags: ['billing', 'eu'],
          scopes: ['read', 'write'],
          metadata: { team: 'core', nested: { n: 1 } },
          expiresAt: Date.now() + 86_400_000,
          rotationIntervalDays: 30,
          rotationDueAt: Date.now() + 30 * 86_400_000,
          monthlyLimit: 1000,
          rateLimit: { limit: 10, windowMs: 1000, burst: 20 }
        })
        const key = await store.createKey(user.id, fixture)
        assert.equal(key.ownerId, user.id)
        assert.equal(key.lastUsedAt, null)
        assert.deepEqual(await store.getKey(user.id, key.id), key)
      })

      it('keeps every key scoped to its owner', async () => {
        const a = await newUser()
        const b = await newUser()
        const key = await store.createKey(a.id, keyFixture())
        assert.equal(await store.getKey(b.id, key.id), null)
        assert.equal(await store.updateKey(b.id, key.id, { name: 'stolen' }), null)
        assert.equal(await store.deleteKey(b.id, key.id), false)
        assert.equal(await store.findKeyByHash(b.id, key.hash as string), null)
        assert.deepEqual((await store.listKeys(b.id, { sort: 'createdAt', descending: false, limit: 100 })).items, [])
        assert.equal((await store.getKey(a.id, key.id))?.name, key.name)
        assert.deepEqual(await store.findKeyByHash(a.id, key.hash as string), key)
      })

      it('finds a credential by hash only for issued keys', async () => {
        const user = await newUser()
        const issued = await store.createKey(user.id, keyFixture())
        assert.deepEqual(await store.findCredentialByHash(issued.hash as string), issued)
        assert.equal(await store.findCredentialByHash('missing'), null)
      })

      it('refuses a duplicate lookup hash', async () => {
        const user = await newUser()
        const key = await store.createKey(user.id, keyFixture())
        await assert.rejects(store.createKey(user.id, keyFixture({ hash: key.hash })), DuplicateError)
      })

      it('updates the given fields only and deletes', async () => {
        const user = await newUser()
        const key = await store.createKey(user.id, keyFixture({ tags: ['a'] }))
        const updated = await store.updateKey(user.id, key.id, {
          name: 'renamed', tags: ['b', 'c'], metadata: { x: 1 }, status: 'disabled', rateLimit: { limit: 5, windowMs: 60_000 }, lastUsedAt: 1234
        })
        assert.equal(updated?.name, 'renamed')
        assert.deepEqual(updated?.tags, ['b', 'c'])
        assert.deepEqual(updated?.metadata, { x: 1 })
        assert.equal(updated?.status, 'disabled')
        assert.equal(updated?.lastUsedAt, 1234)
        assert.equal(updated?.hash, key.hash)
        assert.deepEqual(await store.getKey(user.id, key.id), updated)
        const cleared = await store.updateKey(user.id, key.id, { rateLimit: null, service: null })
        assert.equal(cleared?.rateLimit, null)
        assert.equal((await store.listKeys(user.id, { sort: 'createdAt', descending: false, limit: 10, q: 'renamed' })).items.length, 1)
        assert.equal(await store.deleteKey(user.id, key.id), true)
        assert.equal(await store.getKey(user.id, key.id), null)
      })

      it('filters by status, kind, service, environment, tag and search text', async () => {
        const user = await newUser()
        const k1 = await store.createKey(user.id, keyFixture({ name: 'Stripe live', service: 'stripe', environment: 'production', tags: ['billing'] }))
        const k2 = await store.createKey(user.id, keyFixture({ name: 'OpenAI', kind: 'held', hash: null, service: 'openai', description: 'LLM 100%_ calls', tags: ['ai'] }))
        const k3 = await store.createKey(user.id, keyFixture({ name: 'internal', status: 'disabled', tags: ['billing', 'ai'] }))
        const ids = async (q: Partial<Parameters<Store['listKeys']>[1]>) =>
          (await store.listKeys(user.id, { sort: 'createdAt', descending: false, limit: 100, ...q })).items.map((k) => k.id)
        assert.deepEqual(await ids({}), [k1.id, k2.id, k3.id])
        assert.deepEqual(await ids({ status: 'disabled' }), [k3.id])
        assert.deepEqual(await ids({ kind: 'held' }), [k2.id])
        assert.deepEqual(await ids({ service: 'stripe' }), [k1.id])
        assert.deepEqual(await ids({ environment: 'production' }), [k1.id])
        assert.deepEqual(await ids({ tag: 'billing' }), [k1.id, k3.id])
        assert.deepEqual(await ids({ q: 'STRIPE' }), [k1.id])
        assert.deepEqual(await ids({ q: 'llm' }), [k2.id])
        assert.deepEqual(await ids({ q: '100%_' }), [k2.id], 'LIKE wildcards are literal')
        assert.deepEqual(await ids({ q: '%' }), [k2.id])
        assert.deepEqual(await ids({ q: 'ai' }), [k2.id, k3.id], 'tags are searched')
        assert.deepEqual(await ids({ tag: 'billing', status: 'active' }), [k1.id])
      })

      it('pages through every sort order with no duplicates or gaps', async () => {
        const user = await newUser()
        const base = Date.now()
        const created = []
        for (let i = 0; i < 7; i++) {
          created.push(await store.createKey(user.id, keyFixture({
            id: newId(base + i),
            name: ['b', 'a', 'c', 'a', 'b', 'd', 'a'][i] as string,
            expiresAt: i % 3 === 0 ? null : base + (i % 2) * 1000,
            createdAt: base + i
          })))
        }
        await store.updateKey(user.id, created[2]!.id, { lastUsedAt: base + 50 })
        await store.updateKey(user.id, created[4]!.id, { lastUsedAt: base + 10 })
        for (const sort of ['createdAt', 'name', 'lastUsedAt', 'expiresAt'] as const) {
          for (const descending of [false, true]) {
            const all = (await store.listKeys(user.id, { sort, descending, limit: 100 })).items
            assert.equal(all.length, 7)
            const seen: string[] = []
            let after
            for (let pages = 0; pages < 10; pages++) {
              const page = await store.listKeys(user.id, { sort, descending, limit: 2, after })
              seen.push(...page.items.map((k) => k.id))
              if (page.next === null) break
              after = page.next
            }
            assert.deepEqual(seen, all.map((k) => k.id), `${sort} ${descending ? 'desc' : 'asc'}`)
            const values = all.map((k) => k[sort] ?? -1)
            const sorted = [...values].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0))
            if (descending) sorted.reverse()
            assert.deepEqual(values, sorted, `${sort} order`)
          }
        }
      })

      it('a page boundary holds while keys are added', async () => {
        const user = await newUser()
        const base = Date.now()
        for (let i = 0; i < 4; i++) await store.createKey(user.id, keyFixture({ id: newId(base + i), createdAt: base + i }))
        const first = await store.listKeys(user.id, { sort: 'createdAt', descending: false, limit: 2 })
        await store.createKey(user.id, keyFixture({ id: newId(base + 100), createdAt: base + 100 }))
        const second = await store.listKeys(user.id, { sort: 'createdAt', descending: false, limit: 10, after: first.next ?? undefined })
        const ids = [...first.items, ...second.items].map((k) => k.id)
        assert.equal(new Set(ids).size, 5)
      })
    })
  })
}
