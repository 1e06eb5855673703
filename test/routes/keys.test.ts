import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import Database from 'libsql'
import { canonicalJson } from '../../plugins/app/store/shared.ts'
import { createInstances, createTestApp, ManualClock, registerUser, type TestApp } from '../helpers/app.ts'
import { dropPrefix, REDIS_URL, redisClient, testPrefix } from '../helpers/redis.ts'

const ERROR_KEYS = ['code', 'error', 'message', 'requestId', 'statusCode']
const PASSPHRASE = 'a vault passphrase of some length'

type User = Awaited<ReturnType<typeof registerUser>>

describe('keys, vault and audit routes', () => {
  let t: TestApp
  const clock = new ManualClock()
  /** Every secret and passphrase the run creates, to search logs and caches for afterwards. */
  const secrets = new Set<string>([PASSPHRASE])
  const prefix = testPrefix('keys')

  before(async () => {
    t = await createTestApp({ VAULT_KDF_COST: '10', KEY_CREATE_RATE_LIMIT_MAX: '1000', HEAVY_RATE_LIMIT_MAX: '1000', REDIS_URL, REDIS_PREFIX: prefix }, { clock })
  })
  after(async () => {
    await t.close()
    await dropPrefix(prefix)
  })

  const call = (user: User, method: string, url: string, payload?: unknown) =>
    t.app.inject({ method: method as 'GET', url, headers: user.headers, ...(payload === undefined ? {} : { payload: payload as object }) })

  async function withVault (user?: User) {
    const u = user ?? await registerUser(t.app)
    const res = await call(u, 'PUT', '/api/vault/passphrase', { passphrase: PASSPHRASE })
    assert.equal(res.statusCode, 200)
    return u
  }

  async function createIssued (user: User, body: Record<string, unknown> = {}) {
    clock.advance(1)
    const res = await call(user, 'POST', '/api/keys', { kind: 'issued', name: 'issued key', ...body })
    assert.equal(res.statusCode, 201, res.body)
    const json = res.json()
    secrets.add(json.secret)
    return json as { key: { id: string, version: number, start: string }, secret: string }
  }

  async function createHeld (user: User, secret: string, body: Record<string, unknown> = {}) {
    secrets.add(secret)
    clock.advance(1)
    const res = await call(user, 'POST', '/api/keys', { kind: 'held', name: 'held key', secret, passphrase: PASSPHRASE, ...body })
    assert.equal(res.statusCode, 201, res.body)
    return res.json() as { key: { id: string, version: number, start: string } }
  }

  describe('vault passphrase', () => {
    it('is set once, changed with the current one, and never stored', async () => {
      const user = await registerUser(t.app)
      assert.deepEqual((await call(user, 'GET', '/api/vault')).json(), { passphraseSet: false, updatedAt: null })
      const short = await call(user, 'PUT', '/api/vault/passphrase', { passphrase: 'too short' })
      assert.equal(short.statusCode, 400)
      assert.equal((await call(user, 'PUT', '/api/vault/passphrase', { passphrase: PASSPHRASE })).json().result, 'created')
      assert.equal((await call(user, 'GET', '/api/vault')).json().passphraseSet, true)
      const again = await call(user, 'PUT', '/api/vault/passphrase', { passphrase: 'another passphrase here' })
      assert.equal(again.statusCode, 409)
      assert.equal(again.json().code, 'PASSPHRASE_ALREADY_SET')
      const wrong = await call(user, 'PUT', '/api/vault/passphrase', { currentPassphrase: 'not the passphrase', passphrase: 'another passphrase here' })
      assert.equal(wrong.statusCode, 403)
      assert.equal(wrong.json().code, 'WRONG_PASSPHRASE')
      const vault = await t.app.store.getVault(user.user.id)
      assert.ok(vault !== null && !JSON.stringify(vault).includes(PASSPHRASE))
    })

    it('a passphrase change keeps every secret revealable with the new passphrase only', async () => {
      const user = await withVault()
      const held = await createHeld(user, 'sk_live_change_passphrase_1')
      const recoverable = await createIssued(user, { recoverable: true, passphrase: PASSPHRASE })
      const next = 'the next vault passphrase'
      secrets.add(next)
      const changed = await call(user, 'PUT', '/api/vault/passphrase', { currentPassphrase: PASSPHRASE, passphrase: next })
      assert.equal(changed.json().result, 'changed')
      assert.equal((await call(user, 'POST', `/api/keys/${held.key.id}/reveal`, { passphrase: next })).json().secret, 'sk_live_change_passphrase_1')
      assert.equal((await call(user, 'POST', `/api/keys/${recoverable.key.id}/reveal`, { passphrase: next })).json().secret, recoverable.secret)
      assert.equal((await call(user, 'POST', `/api/keys/${held.key.id}/reveal`, { passphrase: PASSPHRASE })).statusCode, 403)
    })
  })

  describe('creating keys', () => {
    it('issues a prefixed key, shown once, stored only as a hash', async () => {
      const user = await registerUser(t.app)
      const created = await createIssued(user, { prefix: 'acme', scopes: ['read', 'read'], tags: ['b', 'a'], metadata: { team: 'core' } })
      assert.match(created.secret, /^acme_[0-9A-Za-z]{49}$/)
      assert.equal(created.key.start, created.secret.slice(0, 9))
      const fetched = await call(user, 'GET', `/api/keys/${created.key.id}`)
      assert.equal(fetched.statusCode, 200)
      assert.equal(fetched.json().recoverable, false)
      assert.deepEqual(fetched.json().scopes, ['read'], 'duplicates dropped')
      assert.doesNotMatch(fetched.body, new RegExp(created.secret))
      const record = await t.app.store.getKey(user.user.id, created.key.id)
      assert.match(record!.hash!, /^[0-9a-f]{64}$/)
      const versions = await t.app.store.listKeyVersions(user.user.id, created.key.id)
      assert.equal(versions[0]?.ciphertext, null, 'no copy kept unless asked')
    })

    it('held and recoverable keys need a vault passphrase first', async () => {
      const user = await registerUser(t.app)
      for (const body of [{ kind: 'held', name: 'x', secret: 's3cr3t-value', passphrase: PASSPHRASE }, { kind: 'issued', name: 'x', recoverable: true, passphrase: PASSPHRASE }]) {
        const res = await call(user, 'POST', '/api/keys', body)
        assert.equal(res.statusCode, 409)
        assert.equal(res.json().code, 'PASSPHRASE_NOT_SET')
      }
      assert.equal((await call(user, 'GET', '/api/keys')).json().items.length, 0)
    })

    it('a wrong passphrase is 403 WRONG_PASSPHRASE and creates nothing', async () => {
      const user = await withVault()
      const res = await call(user, 'POST', '/api/keys', { kind: 'held', name: 'x', secret: 'sk_wrong_passphrase_case', passphrase: 'not the passphrase' })
      assert.equal(res.statusCode, 403)
      assert.equal(res.json().code, 'WRONG_PASSPHRASE')
      assert.equal((await call(user, 'GET', '/api/keys')).json().items.length, 0)
    })

    it('refuses inconsistent combinations with 400', async () => {
      const user = await withVault()
      const cases = [
        { kind: 'held', name: 'x', passphrase: PASSPHRASE },
        { kind: 'held', name: 'x', secret: 'abc' },
        { kind: 'held', name: 'x', secret: 'abc', passphrase: PASSPHRASE, prefix: 'acme' },
        { kind: 'issued', name: 'x', secret: 'abc' },
        { kind: 'issued', name: 'x', recoverable: true },
        { kind: 'issued', name: 'x', expiresAt: new Date(clock.now() - 1000).toISOString() },
        { kind: 'issued', name: 'x', expiresAt: 'tomorrow' },
        { kind: 'issued', name: 'x', metadata: { blob: 'x'.repeat(5000) } },
        { kind: 'issued', name: 'x', prefix: '9bad' }
      ]
      for (const body of cases) {
        const res = await call(user, 'POST', '/api/keys', body)
        assert.equal(res.statusCode, 400, JSON.stringify(body))
        assert.deepEqual(Object.keys(res.json()).sort(), ERROR_KEYS)
      }
      assert.equal((await call(user, 'GET', '/api/keys')).json().items.length, 0)
    })

    it('the body is a union discriminated on kind, documented as such, whose field rules answer 400 naming the field', async () => {
      interface Branch { title?: string, required: string[], properties: Record<string, { enum?: string[] }> }
      const doc = (await t.app.inject({ method: 'GET', url: '/docs/json' })).json()
      const body = doc.paths['/api/keys'].post.requestBody.content['application/json'].schema as { oneOf: Branch[], discriminator: { propertyName: string } }
      assert.deepEqual(body.discriminator, { propertyName: 'kind' })
      const branch = (kind: string) => body.oneOf.find((b) => b.properties.kind?.enum?.includes(kind))
      const held = branch('held')
      const issued = branch('issued')
      assert.ok(held !== undefined && issued !== undefined, 'both kinds documented')
      assert.deepEqual([...held.required].sort(), ['kind', 'name', 'passphrase', 'secret'])
      assert.equal('prefix' in held.properties || 'recoverable' in held.properties, false)
      assert.deepEqual([...issued.required].sort(), ['kind', 'name'])
      assert.equal('secret' in issued.properties, false)
      assert.ok('prefix' in issued.properties && 'recoverable' in issued.properties && 'passphrase' in issued.properties)

      const user = await withVault()
      const cases: Array<[Record<string, unknown>, string]> = [
        [{ kind: 'held', name: 'x', passphrase: PASSPHRASE }, 'body is missing the required field \'secret\' for a held key'],
        [{ kind: 'held', name: 'x', secret: 'abc' }, 'body is missing the required field \'passphrase\' for a held key'],
        [{ kind: 'held', name: 'x', secret: 'abc', passphrase: PASSPHRASE, prefix: 'acme' }, 'body has an unknown field \'prefix\' for a held key'],
        [{ kind: 'held', name: 'x', secret: 'abc', passphrase: PASSPHRASE, recoverable: true }, 'body has an unknown field \'recoverable\' for a held key'],
        [{ kind: 'issued', name: 'x', secret: 'abc' }, 'body has an unknown field \'secret\' for an issued key'],
        [{ kind: 'issued', name: 'x', recoverable: true }, 'body is missing the required field \'passphrase\' for a recoverable key'],
        [{ name: 'x' }, 'body is missing the required field \'kind\''],
        [{ kind: 'lent', name: 'x' }, 'body/kind must be equal to constant']
      ]
      for (const [payload, message] of cases) {
        const res = await call(user, 'POST', '/api/keys', payload)
        assert.equal(res.statusCode, 400, JSON.stringify(payload))
        assert.deepEqual(Object.keys(res.json()).sort(), ERROR_KEYS)
        assert.equal(res.json().code, 'VALIDATION_FAILED')
        assert.equal(res.json().message, message)
      }
      assert.equal((await call(user, 'GET', '/api/keys')).json().items.length, 0)
      const plain = await createIssued(user, { recoverable: false })
      assert.equal((await call(user, 'GET', `/api/keys/${plain.key.id}`)).json().recoverable, false, 'recoverable: false needs no passphrase')
    })
  })

  describe('reveal', () => {
    it('a held key round-trips; a wrong passphrase fails and changes nothing', async () => {
      const user = await withVault()
      const held = await createHeld(user, 'sk_live_roundtrip_0123456789')
      const before = await t.app.store.auditChain(user.user.id, 0, 100)
      const wrong = await call(user, 'POST', `/api/keys/${held.key.id}/reveal`, { passphrase: 'not the passphrase' })
      assert.equal(wrong.statusCode, 403)
      assert.equal(wrong.json().code, 'WRONG_PASSPHRASE')
      assert.deepEqual(await t.app.store.auditChain(user.user.id, 0, 100), before, 'a failed reveal records nothing')
      const ok = await call(user, 'POST', `/api/keys/${held.key.id}/reveal`, { passphrase: PASSPHRASE })
      assert.equal(ok.statusCode, 200)
      assert.deepEqual(ok.json(), { id: held.key.id, version: 1, secret: 'sk_live_roundtrip_0123456789' })
      assert.equal(ok.headers['cache-control'], 'no-store')
      const events = await t.app.store.listAudit(user.user.id, { limit: 1 })
      assert.equal(events[0]?.action, 'key.revealed')
    })

    it('a plain issued key cannot be revealed', async () => {
      const user = await withVault()
      const issued = await createIssued(user)
      const res = await call(user, 'POST', `/api/keys/${issued.key.id}/reveal`, { passphrase: PASSPHRASE })
      assert.equal(res.statusCode, 409)
      assert.equal(res.json().code, 'NOT_RECOVERABLE')
    })

    it('a ciphertext copied to another key or another user fails to open', async () => {
      const a = await withVault()
      const b = await withVault()
      const source = await createHeld(a, 'sk_live_copied_ciphertext_source')
      const otherOfA = await createHeld(a, 'sk_live_copied_ciphertext_target')
      const ofB = await createHeld(b, 'sk_live_copied_ciphertext_b')
      const db = new Database(join(t.dataDir, 'keyward.db'))
      try {
        const row = db.prepare('SELECT ciphertext FROM key_versions WHERE key_id = ?').get(source.key.id) as { ciphertext: string }
        db.prepare('UPDATE key_versions SET ciphertext = ? WHERE key_id = ?').run(row.ciphertext, otherOfA.key.id)
        db.prepare('UPDATE key_versions SET ciphertext = ? WHERE key_id = ?').run(row.ciphertext, ofB.key.id)
      } finally {
        db.close()
      }
      for (const [user, id] of [[a, otherOfA.key.id], [b, ofB.key.id]] as const) {
        const res = await call(user, 'POST', `/api/keys/${id}/reveal`, { passphrase: PASSPHRASE })
        assert.equal(res.statusCode, 409)
        assert.equal(res.json().code, 'SECRET_UNREADABLE')
        assert.doesNotMatch(res.body, /sk_live_copied/)
      }
      assert.equal((await call(a, 'POST', `/api/keys/${source.key.id}/reveal`, { passphrase: PASSPHRASE })).json().secret, 'sk_live_copied_ciphertext_source')
    })
  })

  describe('rotation and versions', () => {
    it('an issued key gets a new secret; the old version keeps its grace; versions are listed', async () => {
      const user = await withVault()
      const issued = await createIssued(user, { recoverable: true, passphrase: PASSPHRASE, rotationIntervalDays: 30 })
      const rotated = await call(user, 'POST', `/api/keys/${issued.key.id}/rotate`, { gracePeriodSeconds: 3600, passphrase: PASSPHRASE })
      assert.equal(rotated.statusCode, 200)
      const body = rotated.json()
      secrets.add(body.secret)
      assert.notEqual(body.secret, issued.secret)
      assert.equal(body.key.version, 2)
      assert.equal(body.key.rotationDueAt, new Date(clock.now() + 30 * 86_400_000).toISOString())

      const versions = (await call(user, 'GET', `/api/keys/${issued.key.id}/versions`)).json().items
      assert.deepEqual(versions.map((v: { version: number, current: boolean }) => [v.version, v.current]), [[2, true], [1, false]])
      assert.equal(versions[1].graceEndsAt, new Date(clock.now() + 3_600_000).toISOString())

      const store = t.app.store
      const { lookupHash } = await import('../../plugins/app/keys/format.ts')
      const old = await store.findVersionByHash(user.user.id, lookupHash(issued.secret, t.app.config.keys.hashSecret))
      assert.equal(old?.version.version, 1)
      assert.equal(old?.version.graceEndsAt, clock.now() + 3_600_000)

      assert.equal((await call(user, 'POST', `/api/keys/${issued.key.id}/reveal`, { passphrase: PASSPHRASE, version: 1 })).json().secret, issued.secret)
      assert.equal((await call(user, 'POST', `/api/keys/${issued.key.id}/reveal`, { passphrase: PASSPHRASE })).json().secret, body.secret)
      assert.equal((await call(user, 'POST', `/api/keys/${issued.key.id}/reveal`, { passphrase: PASSPHRASE, version: 9 })).statusCode, 404)
    })

    it('a held key takes the provider\'s new secret; the last 10 previous versions are kept', async () => {
      const user = await withVault()
      const held = await createHeld(user, 'sk_held_v1')
      for (let v = 2; v <= 13; v++) {
        secrets.add(`sk_held_v${v}`)
        const res = await call(user, 'POST', `/api/keys/${held.key.id}/rotate`, { secret: `sk_held_v${v}`, passphrase: PASSPHRASE })
        assert.equal(res.statusCode, 200, res.body)
        assert.equal(res.json().secret, undefined, 'a held key\'s secret is not echoed')
      }
      const versions = (await call(user, 'GET', `/api/keys/${held.key.id}/versions`)).json().items
      assert.equal(versions.length, 11)
      assert.equal(versions[0].version, 13)
      assert.equal(versions[10].version, 3)
      assert.equal((await call(user, 'POST', `/api/keys/${held.key.id}/reveal`, { passphrase: PASSPHRASE, version: 3 })).json().secret, 'sk_held_v3')
      assert.equal((await call(user, 'POST', `/api/keys/${held.key.id}/reveal`, { passphrase: PASSPHRASE, version: 2 })).statusCode, 404)
    })

    it('refuses rotations that do not fit the key', async () => {
      const user = await withVault()
      const held = await createHeld(user, 'sk_rotation_refusals')
      const issued = await createIssued(user)
      const recoverable = await createIssued(user, { recoverable: true, passphrase: PASSPHRASE })
      const cases: Array<[string, object, number]> = [
        [held.key.id, { passphrase: PASSPHRASE }, 400],
        [held.key.id, { secret: 'x', passphrase: PASSPHRASE, gracePeriodSeconds: 5 }, 400],
        [held.key.id, { secret: 'x', passphrase: 'not the passphrase' }, 403],
        [issued.key.id, { secret: 'x' }, 400],
        [issued.key.id, { gracePeriodSeconds: 2_592_001 }, 400],
        [recoverable.key.id, {}, 400]
      ]
      for (const [id, body, status] of cases) {
        const res = await call(user, 'POST', `/api/keys/${id}/rotate`, body)
        assert.equal(res.statusCode, status, `${JSON.stringify(body)}: ${res.body}`)
      }
      for (const id of [held.key.id, issued.key.id, recoverable.key.id]) {
        assert.equal((await call(user, 'GET', `/api/keys/${id}`)).json().version, 1, 'nothing rotated')
      }
      await call(user, 'DELETE', `/api/keys/${issued.key.id}`)
      const revoked = await call(user, 'POST', `/api/keys/${issued.key.id}/rotate`, {})
      assert.equal(revoked.statusCode, 409)
      assert.equal(revoked.json().code, 'KEY_REVOKED')
    })
  })

  describe('changes, revocation and bulk', () => {
    it('patches the given fields; revocation is final', async () => {
      const user = await registerUser(t.app)
      const issued = await createIssued(user)
      const expiresAt = new Date(clock.now() + 86_400_000).toISOString()
      const patched = await call(user, 'PATCH', `/api/keys/${issued.key.id}`, {
        name: 'renamed', service: 'billing', tags: ['x'], status: 'disabled', expiresAt, rateLimit: { limit: 10, windowMs: 60_000, burst: 20 }, monthlyLimit: 5000
      })
      assert.equal(patched.statusCode, 200)
      const body = patched.json()
      assert.equal(body.name, 'renamed')
      assert.equal(body.status, 'disabled')
      assert.equal(body.expiresAt, expiresAt)
      assert.deepEqual(body.rateLimit, { limit: 10, windowMs: 60_000, burst: 20 })
      assert.equal((await call(user, 'PATCH', `/api/keys/${issued.key.id}`, { service: null })).json().service, null)

      assert.equal((await call(user, 'DELETE', `/api/keys/${issued.key.id}`)).statusCode, 204)
      const revoked = (await call(user, 'GET', `/api/keys/${issued.key.id}`)).json()
      assert.equal(revoked.status, 'revoked')
      assert.equal(revoked.revokedAt, new Date(clock.now()).toISOString())
      assert.equal((await call(user, 'DELETE', `/api/keys/${issued.key.id}`)).statusCode, 204, 'idempotent')
      const change = await call(user, 'PATCH', `/api/keys/${issued.key.id}`, { status: 'active' })
      assert.equal(change.statusCode, 409)
      assert.equal(change.json().code, 'KEY_REVOKED')
    })

    it('refuses bad patches with 400 and changes nothing', async () => {
      const user = await registerUser(t.app)
      const issued = await createIssued(user, { name: 'stable' })
      const cases = [{}, { status: 'revoked' }, { status: 'expired' }, { hash: 'x' }, { version: 9 }, { name: '' }, { tags: ['bad tag'] },
        { tags: Array.from({ length: 21 }, (_, i) => `t${i}`) }, { rateLimit: { limit: 0, windowMs: 1000 } }, { metadata: { x: 'y'.repeat(5000) } },
        { expiresAt: new Date(clock.now() - 1).toISOString() }, { kind: 'held' },
        { metadata: { a: JSON.parse('['.repeat(150) + ']'.repeat(150)) } }]
      for (const body of cases) {
        const res = await call(user, 'PATCH', `/api/keys/${issued.key.id}`, body)
        assert.equal(res.statusCode, 400, JSON.stringify(body))
      }
      const key = (await call(user, 'GET', `/api/keys/${issued.key.id}`)).json()
      assert.equal(key.name, 'stable')
      assert.equal(key.status, 'active')
    })

    it('bulk actions answer one result per id', async () => {
      const user = await registerUser(t.app)
      const k1 = await createIssued(user, { tags: ['keep'] })
      const k2 = await createIssued(user)
      const otherUser = await registerUser(t.app)
      const other = await createIssued(otherUser)
      const add = await call(user, 'POST', '/api/keys/bulk', { action: 'addTags', ids: [k1.key.id, k2.key.id, other.key.id, 'bogus'], tags: ['bulk'] })
      assert.equal(add.statusCode, 200)
      assert.deepEqual(add.json().results.map((r: { ok: boolean, error?: string }) => [r.ok, r.error ?? null]),
        [[true, null], [true, null], [false, 'NOT_FOUND'], [false, 'NOT_FOUND']])
      assert.deepEqual((await call(user, 'GET', `/api/keys/${k1.key.id}`)).json().tags, ['keep', 'bulk'])
      const disable = await call(user, 'POST', '/api/keys/bulk', { action: 'disable', ids: [k1.key.id] })
      assert.equal(disable.json().results[0].status, 'disabled')
      const revoke = await call(user, 'POST', '/api/keys/bulk', { action: 'revoke', ids: [k1.key.id, k2.key.id] })
      assert.ok(revoke.json().results.every((r: { status: string }) => r.status === 'revoked'))
      const enable = await call(user, 'POST', '/api/keys/bulk', { action: 'enable', ids: [k1.key.id] })
      assert.deepEqual(enable.json().results[0], { id: k1.key.id, ok: false, status: 'revoked', error: 'KEY_REVOKED' })
      assert.equal((await call(user, 'POST', '/api/keys/bulk', { action: 'addTags', ids: [k1.key.id] })).statusCode, 400)
      assert.equal((await call(user, 'POST', '/api/keys/bulk', { action: 'revoke', ids: Array.from({ length: 101 }, (_, i) => String(i)) })).statusCode, 400)
      assert.equal((await call(user, 'POST', '/api/keys/bulk', { action: 'explode', ids: [k1.key.id] })).statusCode, 400)
      assert.deepEqual((await call(otherUser, 'GET', `/api/keys/${other.key.id}`)).json().tags, [], 'the other user\'s key is untouched')
    })
  })

  describe('listing, search, pagination and stats', () => {
    it('filters and searches', async () => {
      const user = await withVault()
      const a = await createIssued(user, { name: 'Payments API', service: 'stripe', environment: 'production', tags: ['billing'] })
      const b = await createHeld(user, 'sk-openai-search', { name: 'LLM', service: 'openai', description: 'Completions for support', tags: ['ai'] })
      const c = await createIssued(user, { name: 'internal tool', tags: ['billing', 'ai'] })
      await call(user, 'PATCH', `/api/keys/${c.key.id}`, { status: 'disabled' })
      const ids = async (query: string) => (await call(user, 'GET', `/api/keys?sort=createdAt&${query}`)).json().items.map((k: { id: string }) => k.id)
      assert.deepEqual(await ids(''), [a.key.id, b.key.id, c.key.id])
      assert.deepEqual(await ids('kind=held'), [b.key.id])
      assert.deepEqual(await ids('status=disabled'), [c.key.id])
      assert.deepEqual(await ids('service=stripe'), [a.key.id])
      assert.deepEqual(await ids('environment=production'), [a.key.id])
      assert.deepEqual(await ids('tag=billing'), [a.key.id, c.key.id])
      assert.deepEqual(await ids('q=support'), [b.key.id])
      assert.deepEqual(await ids('q=PAYMENTS'), [a.key.id])
      assert.deepEqual(await ids('q=ai&tag=billing'), [c.key.id])
      const byName = (await call(user, 'GET', '/api/keys?sort=-name')).json().items.map((k: { name: string }) => k.name)
      assert.deepEqual(byName, ['internal tool', 'Payments API', 'LLM'])
    })

    it('answers a cached page as JSON, and the next change shows at once in the same query', async () => {
      const user = await registerUser(t.app)
      const key = await createIssued(user, { name: 'before', tags: ['x'] })
      const first = await call(user, 'GET', '/api/keys?limit=20')
      const again = await call(user, 'GET', '/api/keys?limit=20')
      assert.match(String(again.headers['content-type']), /^application\/json; charset=utf-8/)
      assert.equal(again.body, first.body, 'a cache hit answers the same bytes')
      assert.equal(again.json().items[0].name, 'before')
      await call(user, 'PATCH', `/api/keys/${key.key.id}`, { name: 'after' })
      assert.equal((await call(user, 'GET', '/api/keys?limit=20')).json().items[0].name, 'after')
    })

    it('pages without duplicates or gaps while keys are added', async () => {
      const user = await registerUser(t.app)
      for (let i = 0; i < 7; i++) {
        clock.advance(1)
        await createIssued(user, { name: `k${i}` })
      }
      const seen: string[] = []
      let cursor: string | null = null
      let pages = 0
      do {
        const res = await call(user, 'GET', `/api/keys?sort=-createdAt&limit=3${cursor === null ? '' : `&cursor=${cursor}`}`)
        assert.equal(res.statusCode, 200)
        const page: { items: Array<{ id: string }>, nextCursor: string | null } = res.json()
        seen.push(...page.items.map((k) => k.id))
        cursor = page.nextCursor
        if (pages === 0) {
          clock.advance(1)
          await createIssued(user, { name: 'added mid-way' })
        }
        pages++
      } while (cursor !== null && pages < 10)
      assert.equal(seen.length, 7, 'the newer key sorts before the first page; the rest follow in order')
      assert.equal(new Set(seen).size, 7)
    })

    it('refuses out-of-range pagination and bad cursors with 400', async () => {
      const user = await registerUser(t.app)
      for (const query of ['limit=101', 'limit=0', 'limit=abc', 'sort=size', 'cursor=%%%', 'cursor=bm90IGpzb24', 'status=gone', 'q=' + 'x'.repeat(101), 'unknown=1']) {
        const res = await call(user, 'GET', `/api/keys?${query}`)
        assert.equal(res.statusCode, 400, query)
        assert.deepEqual(Object.keys(res.json()).sort(), ERROR_KEYS)
      }
      const first = await createIssued(user)
      await createIssued(user)
      const page = (await call(user, 'GET', '/api/keys?sort=name&limit=1')).json()
      assert.ok(page.nextCursor)
      const mismatched = await call(user, 'GET', `/api/keys?sort=createdAt&cursor=${page.nextCursor}`)
      assert.equal(mismatched.statusCode, 400)
      assert.equal(mismatched.json().code, 'INVALID_CURSOR')
      assert.ok(first)
    })

    it('counts keys, and the counts follow every change at once', async () => {
      const user = await withVault()
      const soon = new Date(clock.now() + 3 * 86_400_000).toISOString()
      const a = await createIssued(user, { service: 'stripe', expiresAt: soon })
      await createHeld(user, 'sk-stats-held', { environment: 'staging' })
      const stats = (await call(user, 'GET', '/api/keys/stats')).json()
      assert.equal(stats.total, 2)
      assert.deepEqual(stats.byKind, { held: 1, issued: 1 })
      assert.deepEqual(stats.byEnvironment, { development: 1, staging: 1 })
      assert.equal(stats.expiringSoon, 1)
      await call(user, 'DELETE', `/api/keys/${a.key.id}`)
      const after = (await call(user, 'GET', '/api/keys/stats')).json()
      assert.deepEqual(after.byStatus, { active: 1, revoked: 1 })
      assert.equal(after.expiringSoon, 0)
    })
  })

  describe('owner isolation', () => {
    it('no route lets user B see or touch user A\'s key', async () => {
      const a = await withVault()
      const b = await withVault()
      const held = await createHeld(a, 'sk_owner_isolation_secret')
      const id = held.key.id
      const attempts: Array<[string, string, unknown?]> = [
        ['GET', `/api/keys/${id}`],
        ['PATCH', `/api/keys/${id}`, { name: 'stolen' }],
        ['DELETE', `/api/keys/${id}`],
        ['POST', `/api/keys/${id}/reveal`, { passphrase: PASSPHRASE }],
        ['POST', `/api/keys/${id}/rotate`, { secret: 'x', passphrase: PASSPHRASE }],
        ['GET', `/api/keys/${id}/versions`]
      ]
      for (const [method, url, body] of attempts) {
        const res = await call(b, method, url, body)
        assert.equal(res.statusCode, 404, `${method} ${url}`)
        assert.equal(res.json().code, 'NOT_FOUND')
      }
      const bulk = await call(b, 'POST', '/api/keys/bulk', { action: 'revoke', ids: [id] })
      assert.deepEqual(bulk.json().results, [{ id, ok: false, error: 'NOT_FOUND' }])
      assert.deepEqual((await call(b, 'GET', '/api/keys')).json().items, [])
      assert.equal((await call(b, 'GET', '/api/keys/stats')).json().total, 0)
      assert.equal((await call(b, 'GET', `/api/audit?keyId=${id}`)).json().items.length, 0)
      const key = (await call(a, 'GET', `/api/keys/${id}`)).json()
      assert.equal(key.name, 'held key')
      assert.equal(key.status, 'active')
      assert.equal(key.version, 1)
    })

    it('ids of the wrong form are 404, like unknown ones', async () => {
      const user = await registerUser(t.app)
      for (const id of ['nope', '0'.repeat(24), 'x'.repeat(64)]) {
        assert.equal((await call(user, 'GET', `/api/keys/${id}`)).statusCode, 404)
      }
      assert.equal((await call(user, 'GET', `/api/keys/${'x'.repeat(150)}`)).statusCode, 404, 'long ids are 404 too')
    })

    it('every key route needs a token', async () => {
      for (const [method, url] of [['GET', '/api/keys'], ['POST', '/api/keys'], ['GET', '/api/keys/stats'], ['GET', '/api/audit'], ['PUT', '/api/vault/passphrase']]) {
        const res = await t.app.inject({ method: method as 'GET', url, payload: method === 'GET' ? undefined : {} })
        assert.equal(res.statusCode, 401, `${method} ${url}`)
      }
    })
  })

  describe('audit trail', () => {
    it('records every change, lists newest first with filters, and verifies', async () => {
      const user = await withVault()
      const held = await createHeld(user, 'sk_audit_trail_secret')
      await call(user, 'PATCH', `/api/keys/${held.key.id}`, { name: 'renamed' })
      await call(user, 'POST', `/api/keys/${held.key.id}/reveal`, { passphrase: PASSPHRASE })
      await call(user, 'POST', `/api/keys/${held.key.id}/rotate`, { secret: 'sk_audit_trail_secret_2', passphrase: PASSPHRASE })
      secrets.add('sk_audit_trail_secret_2')
      await call(user, 'DELETE', `/api/keys/${held.key.id}`)
      const list = (await call(user, 'GET', `/api/audit?keyId=${held.key.id}`)).json()
      assert.deepEqual(list.items.map((e: { action: string }) => e.action), ['key.revoked', 'key.rotated', 'key.revealed', 'key.updated', 'key.created'])
      const all = (await call(user, 'GET', '/api/audit')).json().items.map((e: { action: string }) => e.action)
      assert.ok(all.includes('auth.register') && all.includes('vault.passphrase_set'))
      const paged = (await call(user, 'GET', '/api/audit?limit=2')).json()
      const next = (await call(user, 'GET', `/api/audit?limit=2&cursor=${paged.nextCursor}`)).json()
      assert.equal(next.items[0].seq, paged.items[1].seq - 1)
      assert.equal((await call(user, 'GET', '/api/audit?action=key.revealed')).json().items.length, 1)
      assert.equal((await call(user, 'GET', '/api/audit?cursor=abc')).statusCode, 400)
      const report = (await call(user, 'GET', '/api/audit/verify')).json()
      assert.equal(report.valid, true)
      assert.equal(report.events, all.length)
    })

    it('detects an edited and a deleted event', async () => {
      const user = await withVault()
      const held = await createHeld(user, 'sk_audit_tamper')
      await call(user, 'PATCH', `/api/keys/${held.key.id}`, { name: 'one' })
      await call(user, 'PATCH', `/api/keys/${held.key.id}`, { name: 'two' })
      const events = await t.app.store.auditChain(user.user.id, 0, 100)
      assert.equal((await call(user, 'GET', '/api/audit/verify')).json().valid, true)
      const db = new Database(join(t.dataDir, 'keyward.db'))
      try {
        const edited = events[events.length - 2]!
        db.prepare('UPDATE audit_events SET ip = ? WHERE id = ?').run('203.0.113.9', edited.id)
        const report = (await call(user, 'GET', '/api/audit/verify')).json()
        assert.deepEqual([report.valid, report.brokenAt], [false, { seq: edited.seq, reason: 'edited' }])
        db.prepare('UPDATE audit_events SET ip = ? WHERE id = ?').run(edited.ip, edited.id)
        assert.equal((await call(user, 'GET', '/api/audit/verify')).json().valid, true, 'restored')

        const removed = events[1]!
        db.prepare('DELETE FROM audit_events WHERE id = ?').run(removed.id)
        const gap = (await call(user, 'GET', '/api/audit/verify')).json()
        assert.deepEqual([gap.valid, gap.brokenAt], [false, { seq: removed.seq + 1, reason: 'missing' }])
      } finally {
        db.close()
      }
    })

    it('finds an event of a live account marked anonymised, with forged personal fields or blanked ones', async () => {
      const user = await withVault()
      const events = await t.app.store.auditChain(user.user.id, 0, 100)
      assert.ok(events.length >= 2)
      assert.equal((await call(user, 'GET', '/api/audit/verify')).json().valid, true)
      const db = new Database(join(t.dataDir, 'keyward.db'))
      try {
        const target = events[events.length - 2]!
        db.prepare('UPDATE audit_events SET anonymised = 1, ip = ?, session_id = ?, detail = ? WHERE id = ?')
          .run('203.0.113.66', 'forged-session', JSON.stringify({ forged: true }), target.id)
        const forged = (await call(user, 'GET', '/api/audit/verify')).json()
        assert.deepEqual([forged.valid, forged.brokenAt], [false, { seq: target.seq, reason: 'edited' }])
        // Blanked as an account deletion would leave it: still not acceptable while the account lives.
        db.prepare("UPDATE audit_events SET ip = NULL, session_id = NULL, detail = '{}' WHERE id = ?").run(target.id)
        const blanked = (await call(user, 'GET', '/api/audit/verify')).json()
        assert.deepEqual([blanked.valid, blanked.brokenAt], [false, { seq: target.seq, reason: 'edited' }])
      } finally {
        db.close()
      }
    })

    it('finds an edited event whose digest and link were recomputed by the SHA-256 rule (what a writer without the server key can do)', async () => {
      const user = await withVault()
      const events = await t.app.store.auditChain(user.user.id, 0, 100)
      const target = events[events.length - 1]!
      const sha256 = (value: unknown) => createHash('sha256').update(canonicalJson(value)).digest('hex')
      const detail = { forged: true }
      const subjectDigest = sha256([target.ownerId, target.sessionId, '203.0.113.66', detail])
      const hash = sha256([target.seq, target.action, target.keyId, target.createdAt, target.prevHash, subjectDigest])
      const db = new Database(join(t.dataDir, 'keyward.db'))
      try {
        db.prepare('UPDATE audit_events SET ip = ?, detail = ?, subject_digest = ?, hash = ? WHERE id = ?')
          .run('203.0.113.66', JSON.stringify(detail), subjectDigest, hash, target.id)
        const relinked = (await call(user, 'GET', '/api/audit/verify')).json()
        assert.deepEqual([relinked.valid, relinked.brokenAt], [false, { seq: target.seq, reason: 'edited' }])
        // Claiming the old link version does not help: this account's chain has no sealed v1 part.
        db.prepare('UPDATE audit_events SET link_version = 1 WHERE id = ?').run(target.id)
        const downgraded = (await call(user, 'GET', '/api/audit/verify')).json()
        assert.deepEqual([downgraded.valid, downgraded.brokenAt], [false, { seq: target.seq, reason: 'edited' }])
      } finally {
        db.close()
      }
    })
  })

  describe('bad input', () => {
    it('malformed bodies on every key route are 4xx in the error shape and change nothing', async () => {
      const user = await withVault()
      const held = await createHeld(user, 'sk_bad_input_target')
      const id = held.key.id
      const before = (await call(user, 'GET', '/api/keys')).json()
      const cases: Array<[string, string, unknown]> = [
        ['POST', '/api/keys', { kind: 'other', name: 'x' }],
        ['POST', '/api/keys', { name: 'x' }],
        ['POST', '/api/keys', { kind: 'issued', name: 'x'.repeat(101) }],
        ['POST', '/api/keys', { kind: 'issued', name: 'x', scopes: 'read' }],
        ['POST', '/api/keys', { kind: 'issued', name: 'x', tags: [1] }],
        ['POST', '/api/keys', { kind: 'issued', name: 'x', ownerId: 'someone' }],
        ['POST', '/api/keys', { kind: 'issued', name: 'nul\u0000name' }],
        ['POST', '/api/keys', { kind: 'held', name: 'x', secret: 'y'.repeat(8193), passphrase: PASSPHRASE }],
        ['POST', `/api/keys/${id}/reveal`, {}],
        ['POST', `/api/keys/${id}/reveal`, { passphrase: PASSPHRASE, version: 0 }],
        ['POST', `/api/keys/${id}/reveal`, { passphrase: PASSPHRASE, version: '1' }],
        ['POST', `/api/keys/${id}/rotate`, { secret: 5 }],
        ['POST', '/api/keys/bulk', { action: 'revoke', ids: [] }],
        ['POST', '/api/keys/bulk', { action: 'revoke', ids: [id], extra: true }],
        ['PUT', '/api/vault/passphrase', { passphrase: 12345678901234 }],
        ['PUT', '/api/vault/passphrase', {}]
      ]
      for (const [method, url, body] of cases) {
        const res = await call(user, method, url, body)
        assert.ok(res.statusCode >= 400 && res.statusCode < 500, `${method} ${url} ${JSON.stringify(body).slice(0, 80)}: ${res.statusCode}`)
        assert.deepEqual(Object.keys(res.json()).sort(), ERROR_KEYS)
      }
      assert.deepEqual((await call(user, 'GET', '/api/keys')).json(), before)
      assert.equal((await call(user, 'POST', `/api/keys/${id}/reveal`, { passphrase: PASSPHRASE })).json().secret, 'sk_bad_input_target')
    })
  })

  it('no log line, cache entry or audit event holds a secret or passphrase', async () => {
    const logs = t.logs.text()
    const redis = redisClient()
    let cached = ''
    try {
      let cursor = '0'
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500)
        cursor = next
        for (const key of keys) cached += key + '\n' + ((await redis.type(key)) === 'string' ? await redis.get(key) : '') + '\n'
      } while (cursor !== '0')
    } finally {
      redis.disconnect()
    }
    assert.ok(cached.length > 0, 'the run did cache through Redis')
    const db = new Database(join(t.dataDir, 'keyward.db'))
    let audit: string
    try {
      audit = JSON.stringify(db.prepare('SELECT * FROM audit_events').all())
    } finally {
      db.close()
    }
    assert.ok(secrets.size > 10)
    for (const secret of secrets) {
      assert.equal(logs.includes(secret), false, `a log line holds ${secret.slice(0, 8)}…`)
      assert.equal(cached.includes(secret), false, `the cache holds ${secret.slice(0, 8)}…`)
      assert.equal(audit.includes(secret), false, `an audit event holds ${secret.slice(0, 8)}…`)
    }
  })
})

describe('two instances sharing Redis and the store', () => {
  it('a change through one is visible through the other on the very next request', async (ctx) => {
    const { apps: [a, b] } = await createInstances(ctx, 2, { VAULT_KDF_COST: '10' })
    const user = await registerUser(a.app)
    const get = (app: TestApp, url: string) => app.app.inject({ method: 'GET', url, headers: user.headers }).then((r) => r.json())
    assert.equal((await get(b, '/api/keys')).items.length, 0, 'B caches an empty list')
    assert.equal((await get(b, '/api/keys/stats')).total, 0, 'B caches empty stats')
    const created = await a.app.inject({ method: 'POST', url: '/api/keys', headers: user.headers, payload: { kind: 'issued', name: 'from A' } })
    const id = created.json().key.id
    assert.deepEqual((await get(b, '/api/keys')).items.map((k: { id: string }) => k.id), [id])
    assert.equal((await get(b, '/api/keys/stats')).total, 1)
    await a.app.inject({ method: 'PATCH', url: `/api/keys/${id}`, headers: user.headers, payload: { name: 'renamed by A' } })
    assert.equal((await get(b, '/api/keys')).items[0].name, 'renamed by A')
    await b.app.inject({ method: 'DELETE', url: `/api/keys/${id}`, headers: user.headers })
    assert.deepEqual((await get(a, '/api/keys/stats')).byStatus, { revoked: 1 })
  })
})

describe('rate-limit tiers of keys', () => {
  it('key creation and heavy operations are limited per user', async (ctx) => {
    const t = await createTestApp(ctx, { KEY_CREATE_RATE_LIMIT_MAX: '2', HEAVY_RATE_LIMIT_MAX: '1' })
    const a = await registerUser(t.app)
    const b = await registerUser(t.app)
    const create = (u: User) => t.app.inject({ method: 'POST', url: '/api/keys', headers: u.headers, payload: { kind: 'issued', name: 'x' } })
    assert.equal((await create(a)).statusCode, 201)
    assert.equal((await create(a)).statusCode, 201)
    const limited = await create(a)
    assert.equal(limited.statusCode, 429)
    assert.equal(limited.json().code, 'RATE_LIMITED')
    assert.equal((await create(b)).statusCode, 201, 'another user has their own count')
    const id = (await t.app.inject({ method: 'GET', url: '/api/keys', headers: a.headers })).json().items[0].id
    const bulk = () => t.app.inject({ method: 'POST', url: '/api/keys/bulk', headers: a.headers, payload: { action: 'disable', ids: [id] } })
    assert.equal((await bulk()).statusCode, 200)
    assert.equal((await bulk()).statusCode, 429)
    assert.equal((await t.app.inject({ method: 'GET', url: '/api/keys', headers: a.headers })).statusCode, 200, 'reads are not in these tiers')
  })
})
