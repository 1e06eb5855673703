import type { AuditChain } from '../../../plugins/app/store/audit-chain.ts'
import { newId } from '../../../plugins/app/store/ids.ts'
import type { NewKey, Store, UserRecord } from '../../../plugins/app/store/types/index.ts'

export interface StoreHarness {
  store: Store
  /** The chain the store links audit events with. */
  auditChain: AuditChain
  /** Opens a second store over the same data, to prove set-up is idempotent and data persists. */
  reopen (): Promise<Store>
  cleanup (): Promise<void>
}

/** What every aggregate's part of the contract is given; the store is open once the suite's `before` ran. */
export interface ContractContext {
  readonly store: Store
  readonly harness: StoreHarness
  newUser (overrides?: { role?: 'user' | 'admin' }): Promise<UserRecord>
  /** The owner's chain verifies as a whole, as the audit service checks it. */
  verifyChain (ownerId: string, count: number): Promise<void>
}

let counter = 0
export function email () {
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
