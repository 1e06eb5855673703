import assert from 'node:assert/strict'
import { before, describe, it } from 'node:test'
import type { Store } from '../../../plugins/app/store/types/index.ts'
import type { ContractContext } from './fixtures.ts'

export function setupContract (c: ContractContext): void {
  describe('set-up', () => {
    let store: Store
    before(() => { store = c.store })
    const { newUser } = c

    it('init is idempotent and data survives a reopen', async () => {
      const user = await newUser()
      await store.init()
      await store.init()
      const again = await c.harness.reopen()
      try {
        await again.init()
        assert.deepEqual(await again.getUser(user.id), user)
      } finally {
        await again.close()
      }
    })

    it('ping reports a reachable store and the time its answer took', async () => {
      const started = performance.now()
      const health = await store.ping()
      const elapsed = performance.now() - started
      assert.equal(health.ok, true)
      assert.equal(health.error, undefined)
      assert.ok(Number.isFinite(health.latencyMs) && health.latencyMs >= 0 && health.latencyMs <= elapsed,
        `a latency of ${health.latencyMs} ms, measured within the ${elapsed} ms the call took`)
    })
  })
}
