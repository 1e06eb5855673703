import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import type { Store } from '../../../plugins/app/store/types/index.ts'
import type { ContractContext } from './fixtures.ts'

export function sessionsContract (c: ContractContext): void {
  describe('sessions and refresh tokens', () => {
    let store: Store
    before(() => { store = c.store })
    const { newUser } = c

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

    it('purges expired sessions and their refresh tokens', async () => {
      const user = await newUser()
      const now = Date.now()
      await store.createSession({ userId: user.id, expiresAt: now - 1, userAgent: null, ip: null }, 'rt-old-' + user.id)
      assert.ok(await store.purgeSessions(now, 1000) >= 1)
      assert.deepEqual(await store.listSessions(user.id), [])
      assert.deepEqual(await store.rotateRefreshToken('rt-old-' + user.id, 'rt-new-' + user.id, now), { status: 'invalid' })
    })
  })
}
