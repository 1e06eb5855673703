/**
 * The storage contract, shaped by Keyward's domain: one narrow interface per aggregate, and the
 * Store that has them all. Every method that touches data owned by a user takes that user's id
 * first and never returns another user's records, so no caller can leak data by forgetting a
 * filter. Times are epoch milliseconds (UTC).
 */
import type { AuditStore } from './audit.ts'
import type { KeysStore } from './keys.ts'
import type { NotificationsStore } from './notifications.ts'
import type { OpsStore } from './ops.ts'
import type { SessionsStore } from './sessions.ts'
import type { UsageStore } from './usage.ts'
import type { UsersStore } from './users.ts'
import type { VaultStore } from './vault.ts'

export type * from './audit.ts'
export type * from './keys.ts'
export type * from './notifications.ts'
export type * from './ops.ts'
export type * from './sessions.ts'
export type * from './usage.ts'
export type * from './users.ts'
export type * from './vault.ts'

export interface StoreHealth {
  ok: boolean
  latencyMs: number
  error?: string
}

export interface Store extends UsersStore, VaultStore, SessionsStore, KeysStore, UsageStore, AuditStore, NotificationsStore, OpsStore {
  readonly kind: 'sqlite' | 'mongo'
  /** Applies migrations and indexes; safe to call any number of times. */
  init (): Promise<void>
  close (): Promise<void>
  ping (): Promise<StoreHealth>
}
