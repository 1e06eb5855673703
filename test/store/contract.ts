import assert from 'node:assert/strict'
import { describe, it, before, after } from 'node:test'
import { AuditService } from '../../plugins/app/audit/service.ts'
import type { AuditChain } from '../../plugins/app/store/audit-chain.ts'
import { newId } from '../../plugins/app/store/ids.ts'
import { anonymousOwner, GENESIS_HASH } from '../../plugins/app/store/shared.ts'
import { DuplicateError, type NewKey, type Store } from '../../plugins/app/store/types.ts'

export interface StoreHarness {
  store: Store
  /** The chain the store links audit events with. */
  auditChain: AuditChain
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
    recoverable: false,
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

    /** The owner's chain verifies as a whole, as the audit service checks it. */
    const verifyChain = async (ownerId: string, count: number) => {
      const events = await store.auditChain(ownerId, 0, 100)
      assert.ok(events.every((e) => e.linkVersion === 2), 'new events are linked with the HMAC')
      const report = await new AuditService(store, h.auditChain).verify(ownerId)
      assert.deepEqual(report, { valid: true, events: count, brokenAt: null, lastHash: events[events.length - 1]?.hash ?? GENESIS_HASH })
    }

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
    })

    describe('key versions, rotation and stats', () => {
      it('creates the first version with the key and its audit event in one step', async () => {
        const user = await newUser()
        const key = await store.createKey(user.id, keyFixture({ recoverable: true }), { hash: 'v1-' + user.id, start: 'kw_v1', ciphertext: 'sealed-1' }, { action: 'key.created', ip: '10.0.0.1' })
        assert.equal(key.recoverable, true)
        const versions = await store.listKeyVersions(user.id, key.id)
        assert.equal(versions.length, 1)
        assert.deepEqual({ ...versions[0], createdAt: 0 }, {
          keyId: key.id, ownerId: user.id, version: 1, hash: 'v1-' + user.id, start: 'kw_v1', ciphertext: 'sealed-1', createdAt: 0, retiredAt: null, graceEndsAt: null
        })
        const events = await store.auditChain(user.id, 0, 10)
        assert.equal(events.length, 1)
        assert.equal(events[0]?.action, 'key.created')
        assert.equal(events[0]?.keyId, key.id)
        assert.deepEqual(await store.listKeyVersions(newId(), key.id), [], 'versions are owner-scoped')
      })

      it('a failed create leaves no version and no audit event behind', async () => {
        const user = await newUser()
        const key = await store.createKey(user.id, keyFixture(), { hash: 'dup-' + user.id, start: 's', ciphertext: null })
        await assert.rejects(store.createKey(user.id, keyFixture({ hash: key.hash }), { hash: 'other-' + user.id, start: 's', ciphertext: null }, { action: 'key.created' }), DuplicateError)
        assert.equal(await store.getKeyVersion(user.id, key.id, 2), null)
        assert.deepEqual(await store.auditChain(user.id, 0, 10), [])
        assert.equal(await store.findVersionByHash(user.id, 'other-' + user.id), null)
      })

      it('rotates: the old version is retired with its grace, still found by hash, and old versions are pruned', async () => {
        const user = await newUser()
        const key = await store.createKey(user.id, keyFixture({ hash: 'h1-' + user.id }), { hash: 'h1-' + user.id, start: 's1', ciphertext: null })
        const now = Date.now()
        let current = key
        for (let v = 2; v <= 14; v++) {
          const rotated = await store.rotateKey(user.id, key.id, {
            patch: { version: v, hash: `h${v}-${user.id}`, start: `s${v}` },
            next: { hash: `h${v}-${user.id}`, start: `s${v}`, ciphertext: null },
            graceEndsAt: now + v * 1000,
            keepPrevious: 10,
            now
          }, { action: 'key.rotated', detail: { version: v } })
          assert.ok(rotated)
          current = rotated
        }
        assert.equal(current.version, 14)
        assert.equal(current.hash, 'h14-' + user.id)
        assert.deepEqual((await store.getKey(user.id, key.id))?.version, 14)
        const versions = await store.listKeyVersions(user.id, key.id)
        assert.deepEqual(versions.map((v) => v.version), [14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4], 'the current version and 10 previous')
        assert.equal(versions[0]?.retiredAt, null)
        assert.equal(versions[1]?.retiredAt, now)
        assert.equal(versions[1]?.graceEndsAt, now + 14 * 1000)
        const old = await store.findVersionByHash(user.id, 'h13-' + user.id)
        assert.equal(old?.key.id, key.id)
        assert.equal(old?.version.version, 13)
        assert.equal((await store.findVersionByHash(user.id, 'h14-' + user.id))?.version.retiredAt, null)
        assert.equal(await store.findVersionByHash(user.id, 'h2-' + user.id), null, 'pruned versions are gone')
        assert.equal(await store.findVersionByHash(newId(), 'h14-' + user.id), null, 'owner-scoped')
        assert.equal(await store.rotateKey(newId(), key.id, {
          patch: { version: 15 }, next: { hash: null, start: 'x', ciphertext: null }, graceEndsAt: null, keepPrevious: 10, now
        }), null, 'another owner cannot rotate')
        assert.equal((await store.auditChain(user.id, 0, 100)).length, 13)
        assert.equal(await store.deleteKey(user.id, key.id), true)
        assert.deepEqual(await store.listKeyVersions(user.id, key.id), [])
      })

      it('counts keys by status, kind, service and environment, expiring and rotation due', async () => {
        const user = await newUser()
        const now = Date.now()
        await store.createKey(user.id, keyFixture({ service: 'stripe', expiresAt: now + 86_400_000 }))
        await store.createKey(user.id, keyFixture({ service: 'stripe', environment: 'production', rotationDueAt: now - 1 }))
        await store.createKey(user.id, keyFixture({ kind: 'held', hash: null, status: 'disabled', expiresAt: now + 86_400_000 }))
        await store.createKey(user.id, keyFixture({ expiresAt: now + 30 * 86_400_000 }))
        const stats = await store.keyStats(user.id, now)
        assert.equal(stats.total, 4)
        assert.deepEqual(stats.byStatus, { active: 3, disabled: 1 })
        assert.deepEqual(stats.byKind, { held: 1, issued: 3 })
        assert.deepEqual(stats.byService, { none: 2, stripe: 2 })
        assert.deepEqual(stats.byEnvironment, { development: 3, production: 1 })
        assert.equal(stats.expiringSoon, 1, 'active keys expiring within 7 days')
        assert.equal(stats.rotationDue, 1)
        assert.equal((await store.keyStats(newId(), now)).total, 0)
      })
    })

    describe('usage', () => {
      const HOUR = 3_600_000
      const month = Date.UTC(2026, 10, 1)

      it('adds deltas to hourly and monthly counters, returns totals and moves lastUsedAt forward', async () => {
        const user = await newUser()
        const key = await store.createKey(user.id, keyFixture())
        const d = (hour: number, units: number, lastUsedAt = hour + 5) => ({ ownerId: user.id, keyId: key.id, hour, units, requests: 1, lastUsedAt })
        const first = await store.recordUsage([d(month, 3), d(month + HOUR, 2)])
        assert.deepEqual(first, [{ keyId: key.id, month, units: 5, requests: 2 }])
        const second = await store.recordUsage([d(month + HOUR, 4, month + 10)])
        assert.deepEqual(second, [{ keyId: key.id, month, units: 9, requests: 3 }])
        assert.deepEqual(await store.usageSeries(user.id, key.id, month, month + 2 * HOUR),
          [{ hour: month, units: 3, requests: 1 }, { hour: month + HOUR, units: 6, requests: 2 }])
        assert.deepEqual(await store.usageSeries(user.id, key.id, month + HOUR, month + 2 * HOUR), [{ hour: month + HOUR, units: 6, requests: 2 }])
        assert.equal((await store.getKey(user.id, key.id))?.lastUsedAt, month + HOUR + 5, 'lastUsedAt never moves back')
        const next = Date.UTC(2026, 11, 1)
        assert.deepEqual(await store.recordUsage([d(next, 1)]), [{ keyId: key.id, month: next, units: 1, requests: 1 }], 'a new month starts at zero')
        assert.deepEqual(await store.monthlyUsage(user.id, month), [{ keyId: key.id, month, units: 9, requests: 3 }])
        assert.deepEqual(await store.monthlyUsage(user.id, month, [key.id, 'other']), [{ keyId: key.id, month, units: 9, requests: 3 }])
        assert.deepEqual(await store.recordUsage([]), [])
      })

      it('is owner-scoped and removed with the key or the account', async () => {
        const a = await newUser()
        const b = await newUser()
        const key = await store.createKey(a.id, keyFixture())
        await store.recordUsage([{ ownerId: a.id, keyId: key.id, hour: month, units: 1, requests: 1, lastUsedAt: month }])
        assert.deepEqual(await store.usageSeries(b.id, key.id, 0, month + HOUR), [])
        assert.deepEqual(await store.monthlyUsage(b.id, month), [])
        await store.deleteKey(a.id, key.id)
        assert.deepEqual(await store.usageSeries(a.id, key.id, 0, month + HOUR), [])
        const other = await store.createKey(a.id, keyFixture())
        await store.recordUsage([{ ownerId: a.id, keyId: other.id, hour: month, units: 1, requests: 1, lastUsedAt: month }])
        await store.deleteUser(a.id)
        assert.deepEqual(await store.monthlyUsage(a.id, month), [])
      })

      it('records usage once per idempotency key', async () => {
        const user = await newUser()
        const key = await store.createKey(user.id, keyFixture())
        const delta = { ownerId: user.id, keyId: key.id, hour: month, units: 5, requests: 5, lastUsedAt: month }
        assert.deepEqual(await store.recordUsageOnce(user.id, 'idem-1', delta), { duplicate: false, total: { keyId: key.id, month, units: 5, requests: 5 } })
        assert.deepEqual(await store.recordUsageOnce(user.id, 'idem-1', delta), { duplicate: true, total: { keyId: key.id, month, units: 5, requests: 5 } })
        assert.equal((await store.recordUsageOnce(user.id, 'idem-2', delta)).total.units, 10)
      })
    })

    describe('notifications, webhooks and deliveries', () => {
      it('creates a notification once per dedupe key, lists newest first, marks read, owner-scoped', async () => {
        const a = await newUser()
        const b = await newUser()
        const n1 = await store.createNotification(a.id, { type: 'quota_80', keyId: 'k1', title: 'Quota 80%', detail: { used: 80 }, dedupeKey: 'quota_80:k1:2026-11' })
        assert.ok(n1)
        assert.equal(await store.createNotification(a.id, { type: 'quota_80', keyId: 'k1', title: 'again', detail: {}, dedupeKey: 'quota_80:k1:2026-11' }), null)
        const n2 = await store.createNotification(a.id, { type: 'expired', keyId: 'k2', title: 'Expired', detail: {}, dedupeKey: 'expired:k2' })
        assert.ok(await store.createNotification(b.id, { type: 'expired', keyId: 'k2', title: 'Expired', detail: {}, dedupeKey: 'expired:k2' }), 'dedupe is per owner')
        assert.deepEqual((await store.listNotifications(a.id, { limit: 10 })).map((n) => n.id), [n2!.id, n1.id])
        assert.deepEqual((await store.listNotifications(a.id, { limit: 10, beforeId: n2!.id })).map((n) => n.id), [n1.id])
        assert.equal(await store.markNotificationRead(b.id, n1.id, 5), null, 'B cannot read A\'s notification')
        assert.equal((await store.markNotificationRead(a.id, n1.id, 5))?.readAt, 5)
        assert.equal((await store.markNotificationRead(a.id, n1.id, 9))?.readAt, 5, 'read once')
        assert.deepEqual((await store.listNotifications(a.id, { limit: 10, unreadOnly: true })).map((n) => n.id), [n2!.id])
      })

      it('keeps one webhook per owner and one delivery per event', async () => {
        const user = await newUser()
        assert.equal(await store.getWebhook(user.id), null)
        const hook = await store.setWebhook(user.id, { url: 'https://example.com/hook', secret: 's1' })
        assert.equal(hook?.url, 'https://example.com/hook')
        assert.equal((await store.setWebhook(user.id, { url: 'https://example.com/other', secret: 's2' }))?.secret, 's2')
        const now = Date.now()
        const d = await store.enqueueDelivery({ ownerId: user.id, eventId: 'evt-' + user.id, url: 'https://example.com/other', payload: '{}' }, now)
        assert.ok(d)
        assert.equal(await store.enqueueDelivery({ ownerId: user.id, eventId: 'evt-' + user.id, url: 'x', payload: '{}' }, now), null)
        assert.ok((await store.dueDeliveries(now, 100)).some((x) => x.id === d.id))
        await store.updateDelivery(d.id, { attempts: 1, nextAttemptAt: now + 1000, lastError: 'HTTP 500' })
        assert.ok(!(await store.dueDeliveries(now, 100)).some((x) => x.id === d.id))
        await store.updateDelivery(d.id, { status: 'delivered', deliveredAt: now + 1000 })
        const done = await store.getDelivery(d.id)
        assert.deepEqual([done?.status, done?.attempts, done?.lastError], ['delivered', 1, 'HTTP 500'])
        assert.equal(await store.setWebhook(user.id, null), null)
        assert.equal(await store.getWebhook(user.id), null)
      })
    })

    describe('maintenance', () => {
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

      it('purges revoked keys past retention, old hourly usage, expired sessions and idempotency records', async () => {
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

        const key = await store.createKey(user.id, keyFixture())
        const oldHour = Date.UTC(2020, 0, 1)
        await store.recordUsage([{ ownerId: user.id, keyId: key.id, hour: oldHour, units: 1, requests: 1, lastUsedAt: oldHour }])
        await store.rollupDaily(oldHour, oldHour + 3_600_000)
        assert.ok(await store.purgeUsageHourly(Date.UTC(2021, 0, 1), 10_000) >= 1)
        assert.deepEqual(await store.usageSeries(user.id, key.id, 0, now), [])
        assert.deepEqual(await store.usageDaily(user.id, key.id, 0, now), [{ hour: oldHour, units: 1, requests: 1 }], 'daily totals are kept')

        await store.createSession({ userId: user.id, expiresAt: now - 1, userAgent: null, ip: null }, 'rt-old-' + user.id)
        assert.ok(await store.purgeSessions(now, 1000) >= 1)
        assert.deepEqual(await store.listSessions(user.id), [])
      })

      it('rolls hourly usage up into days idempotently', async () => {
        const user = await newUser()
        const key = await store.createKey(user.id, keyFixture())
        const day = Date.UTC(2026, 10, 20)
        await store.recordUsage([
          { ownerId: user.id, keyId: key.id, hour: day + 3_600_000, units: 2, requests: 2, lastUsedAt: day },
          { ownerId: user.id, keyId: key.id, hour: day + 5 * 3_600_000, units: 3, requests: 1, lastUsedAt: day }
        ])
        await store.rollupDaily(day, day + 86_400_000)
        await store.rollupDaily(day, day + 86_400_000)
        assert.deepEqual(await store.usageDaily(user.id, key.id, day, day + 86_400_000), [{ hour: day, units: 5, requests: 3 }])
      })

      it('prunes old audit events and anchors the chain so it still verifies', async () => {
        const user = await newUser()
        const e1 = await store.appendAudit(user.id, { action: 'a' })
        const e2 = await store.appendAudit(user.id, { action: 'b' })
        await store.appendAudit(user.id, { action: 'c' })
        assert.deepEqual(await store.auditAnchor(user.id), { seq: 0, hash: GENESIS_HASH })
        assert.ok(await store.purgeAudit(e2.createdAt + 1, 10_000) >= 2)
        const anchor = await store.auditAnchor(user.id)
        assert.ok(anchor.seq >= e2.seq)
        const rest = await store.auditChain(user.id, 0, 10)
        if (rest.length > 0) assert.equal(rest[0]!.prevHash, anchor.hash)
        assert.ok(!rest.some((e) => e.id === e1.id))
        await store.purgeAudit(Date.now() + 1000, 10_000)
        const next = await store.appendAudit(user.id, { action: 'd' })
        const last = await store.auditAnchor(user.id)
        assert.deepEqual([next.seq, next.prevHash], [last.seq + 1, last.hash], 'after a full prune the chain continues from its anchor')
        await verifyChain(user.id, 1)
      })

      it('records job runs, stats snapshots, counts and leases', async () => {
        const job = 'job-' + newId()
        await store.recordJobRun({ job, startedAt: 1000, durationMs: 5, ok: true, result: { n: 1 }, error: null })
        await store.recordJobRun({ job, startedAt: 2000, durationMs: 7, ok: false, result: {}, error: 'boom' })
        const runs = await store.jobRuns(job, 10)
        assert.deepEqual(runs.map((r) => [r.startedAt, r.ok, r.error]), [[2000, false, 'boom'], [1000, true, null]])
        const at = Date.UTC(2030, 0, 1) + Math.floor(Math.random() * 1e6)
        await store.saveStatsSnapshot({ at, data: { users: 3 } })
        await store.saveStatsSnapshot({ at, data: { users: 4 } })
        assert.deepEqual(await store.statsSnapshots(at, at + 1, 10), [{ at, data: { users: 4 } }])
        assert.ok(await store.purgeStatsSnapshots(at + 1) >= 1)
        const counts = await store.systemCounts(Date.now())
        assert.ok(counts.users >= 1 && counts.keys >= 0)
        const lease = 'lease-' + newId()
        assert.equal(await store.acquireLease(lease, 'p1', 1000, 0), true)
        assert.equal(await store.acquireLease(lease, 'p2', 1000, 10), false, 'held by another')
        assert.equal(await store.acquireLease(lease, 'p1', 1000, 20), true, 'renewed by its holder')
        assert.equal(await store.acquireLease(lease, 'p2', 1000, 2000), true, 'taken after expiry')
        await store.releaseLease(lease, 'p2')
        assert.equal(await store.acquireLease(lease, 'p3', 1000, 2001), true)
      })
    })

    describe('vaults', () => {
      it('creates once and replaces only from the current revision', async () => {
        const user = await newUser()
        assert.equal(await store.getVault(user.id), null)
        assert.equal(await store.saveVault(user.id, { kdf: 'k1', wrappedKey: 'w1' }, null, { action: 'vault.created' }), true)
        assert.equal(await store.saveVault(user.id, { kdf: 'k2', wrappedKey: 'w2' }, null), false, 'a second create loses')
        const v1 = await store.getVault(user.id)
        assert.equal(v1?.revision, 1)
        assert.equal(v1?.kdf, 'k1')
        assert.equal(await store.saveVault(user.id, { kdf: 'k3', wrappedKey: 'w3' }, 7), false, 'stale revision')
        assert.equal(await store.saveVault(user.id, { kdf: 'k3', wrappedKey: 'w3' }, 1, { action: 'vault.passphrase_changed' }), true)
        const v2 = await store.getVault(user.id)
        assert.equal(v2?.revision, 2)
        assert.equal(v2?.wrappedKey, 'w3')
        assert.deepEqual((await store.auditChain(user.id, 0, 10)).map((e) => e.action), ['vault.created', 'vault.passphrase_changed'])
        await store.deleteUser(user.id)
        assert.equal(await store.getVault(user.id), null)
      })
    })

    describe('audit trail', () => {
      it('chains each owner\'s events and lists them newest first with filters', async () => {
        const a = await newUser()
        const b = await newUser()
        const e1 = await store.appendAudit(a.id, { action: 'auth.login', ip: '1.2.3.4', sessionId: 's1' })
        await store.appendAudit(b.id, { action: 'auth.login' })
        const e2 = await store.appendAudit(a.id, { action: 'key.revealed', keyId: 'k1', detail: { version: 2, nested: { z: 1, a: 2 } } })
        const e3 = await store.appendAudit(a.id, { action: 'key.updated', keyId: 'k2' })
        assert.deepEqual([e1.seq, e2.seq, e3.seq], [1, 2, 3])
        assert.equal(e2.prevHash, e1.hash)
        const chain = await store.auditChain(a.id, 0, 100)
        assert.deepEqual(chain, [e1, e2, e3])
        await verifyChain(a.id, 3)
        assert.deepEqual((await store.auditChain(a.id, 1, 1)).map((e) => e.seq), [2], 'batched reads')
        assert.deepEqual((await store.listAudit(a.id, { limit: 10 })).map((e) => e.seq), [3, 2, 1])
        assert.deepEqual((await store.listAudit(a.id, { limit: 10, action: 'key.revealed' })).map((e) => e.seq), [2])
        assert.deepEqual((await store.listAudit(a.id, { limit: 10, keyId: 'k2' })).map((e) => e.seq), [3])
        assert.deepEqual((await store.listAudit(a.id, { limit: 2 })).map((e) => e.seq), [3, 2])
        assert.deepEqual((await store.listAudit(a.id, { limit: 10, beforeSeq: 2 })).map((e) => e.seq), [1])
        assert.equal((await store.listAudit(b.id, { limit: 10 })).length, 1, 'owner-scoped')
      })

      it('records user, session and vault changes in the same step when asked', async () => {
        const user = await newUser()
        await store.updateUser(user.id, { passwordHash: 'x' }, { action: 'auth.password_changed' })
        const s = await store.createSession({ userId: user.id, expiresAt: Date.now() + 60_000, userAgent: null, ip: null }, 'rt-audit-' + user.id)
        await store.revokeSession(user.id, s.id, Date.now(), { action: 'auth.logout', sessionId: s.id })
        await store.revokeSessions(user.id, Date.now(), undefined, { action: 'auth.logout_all' })
        const actions = (await store.auditChain(user.id, 0, 10)).map((e) => e.action)
        assert.deepEqual(actions, ['auth.password_changed', 'auth.logout', 'auth.logout_all'])
      })

      it('keeps a deleted account\'s events anonymised and still chained', async () => {
        const user = await newUser()
        await store.appendAudit(user.id, { action: 'auth.login', ip: '9.9.9.9', sessionId: 'sess', detail: { email: user.email } })
        await store.appendAudit(user.id, { action: 'key.created', keyId: 'k' })
        await store.deleteUser(user.id)
        assert.deepEqual(await store.listAudit(user.id, { limit: 10 }), [])
        const kept = await store.auditChain(anonymousOwner(user.id), 0, 10)
        assert.equal(kept.length, 2)
        assert.ok(kept.every((e) => e.anonymised && e.ip === null && e.sessionId === null && Object.keys(e.detail).length === 0))
        assert.ok(!JSON.stringify(kept).includes(user.email) && !JSON.stringify(kept).includes(user.id))
        await verifyChain(anonymousOwner(user.id), 2)
      })
    })
  })
}
