import assert from 'node:assert/strict'
import { after, before, describe } from 'node:test'
import { AuditService } from '../../../plugins/app/audit/service.ts'
import { GENESIS_HASH } from '../../../plugins/app/store/shared.ts'
import { auditContract } from './audit.ts'
import { email, type ContractContext, type StoreHarness } from './fixtures.ts'
import { keyVersionsContract } from './key-versions.ts'
import { keysContract } from './keys.ts'
import { notificationsContract } from './notifications.ts'
import { opsContract } from './ops.ts'
import { sessionsContract } from './sessions.ts'
import { setupContract } from './setup.ts'
import { usageContract } from './usage.ts'
import { usersContract } from './users.ts'
import { vaultContract } from './vault.ts'

export type { StoreHarness } from './fixtures.ts'

/** The behaviour every Store adapter must have, aggregate by aggregate; run against SQLite always and MongoDB when configured. */
export function storeContract (name: string, open: () => Promise<StoreHarness>, options: { skip?: boolean | string } = {}) {
  describe(`Store contract: ${name}`, { skip: options.skip }, () => {
    let h: StoreHarness | undefined
    before(async () => { h = await open() })
    after(async () => { await h?.cleanup() })

    const harness = () => {
      if (h === undefined) throw new Error('the store is opened in the suite\'s before hook')
      return h
    }
    const context: ContractContext = {
      get harness () { return harness() },
      get store () { return harness().store },
      newUser: (overrides = {}) =>
        context.store.createUser({ email: email(), name: 'Ada', role: overrides.role ?? 'user', passwordHash: 'scrypt$hash' }),
      verifyChain: async (ownerId, count) => {
        const events = await context.store.auditChain(ownerId, 0, 100)
        assert.ok(events.every((e) => e.linkVersion === 2), 'new events are linked with the HMAC')
        const report = await new AuditService(context.store, harness().auditChain).verify(ownerId)
        assert.deepEqual(report, { valid: true, events: count, brokenAt: null, lastHash: events[events.length - 1]?.hash ?? GENESIS_HASH })
      }
    }

    setupContract(context)
    usersContract(context)
    sessionsContract(context)
    keysContract(context)
    keyVersionsContract(context)
    usageContract(context)
    notificationsContract(context)
    opsContract(context)
    vaultContract(context)
    auditContract(context)
  })
}
