import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import { DuplicateError } from '../../../plugins/app/store/errors.ts'
import { newId } from '../../../plugins/app/store/ids.ts'
import type { Store } from '../../../plugins/app/store/types/index.ts'
import { keyFixture, type ContractContext } from './fixtures.ts'

export function keysContract (c: ContractContext): void {
  describe('keys', () => {
    let store: Store
    before(() => { store = c.store })
    const { newUser } = c

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
      assert.equal(key.revokedAt, null)
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

    it('refuses any change that would undo a revocation, inside the write', async () => {
      const user = await newUser()
      const key = await store.createKey(user.id, keyFixture())
      await store.updateKey(user.id, key.id, { status: 'revoked', revokedAt: 1 })
      await assert.rejects(store.updateKey(user.id, key.id, { status: 'active' }), (err: Error) => err.name === 'KeyRevokedError')
      await assert.rejects(store.updateKey(user.id, key.id, { name: 'renamed' }), (err: Error) => err.name === 'KeyRevokedError')
      assert.equal((await store.getKey(user.id, key.id))?.status, 'revoked')
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

    it('expires keys past expiresAt in batches, with an audit event, and finds expiring and rotation-due keys', async () => {
      const user = await newUser()
      const now = Date.now()
      const past = await store.createKey(user.id, keyFixture({ expiresAt: now - 1000 }))
      const soon = await store.createKey(user.id, keyFixture({ expiresAt: now + 3 * 86_400_000 }))
      const due = await store.createKey(user.id, keyFixture({ rotationDueAt: now - 1 }))
      const expired = await store.expireKeys(now, 1000)
      assert.ok(expired.some((k) => k.id === past.id && k.status === 'expired'))
      assert.equal((await store.getKey(user.id, past.id))?.status, 'expired')
      assert.equal((await store.expireKeys(now, 1000)).filter((k) => k.ownerId === user.id).length, 0, 'idempotent')
      assert.ok((await store.listAudit(user.id, { limit: 5, keyId: past.id })).some((e) => e.action === 'key.expired'))
      assert.ok((await store.keysExpiringBetween(now, now + 7 * 86_400_000, '', 1000)).some((k) => k.id === soon.id))
      assert.ok((await store.keysRotationDue(now, '', 1000)).some((k) => k.id === due.id))
      const limited = await store.createKey(user.id, keyFixture({ monthlyLimit: 10 }))
      assert.ok((await store.keysWithMonthlyLimit('', 10_000)).some((k) => k.id === limited.id))
    })

    it('purges revoked keys past retention with their versions, and keeps recently revoked ones', async () => {
      const user = await newUser()
      const now = Date.now()
      const old = await store.createKey(user.id, keyFixture(), { hash: 'purge-' + user.id, start: 's', ciphertext: null })
      await store.updateKey(user.id, old.id, { status: 'revoked', revokedAt: now - 40 * 86_400_000 })
      const recent = await store.createKey(user.id, keyFixture())
      await store.updateKey(user.id, recent.id, { status: 'revoked', revokedAt: now })
      assert.ok(await store.purgeRevokedKeys(now - 30 * 86_400_000, 1000) >= 1)
      assert.equal(await store.getKey(user.id, old.id), null)
      assert.deepEqual(await store.listKeyVersions(user.id, old.id), [])
      assert.ok(await store.getKey(user.id, recent.id))
    })
  })
}
