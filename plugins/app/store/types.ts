/**
 * The storage contract, shaped by Keyward's domain. Every method that touches data owned by a
 * user takes that user's id first and never returns another user's records, so no caller can
 * leak data by forgetting a filter. Times are epoch milliseconds (UTC).
 */

export type Role = 'user' | 'admin'

export interface UserRecord {
  id: string
  email: string
  name: string | null
  role: Role
  passwordHash: string
  createdAt: number
  updatedAt: number
}

export interface NewUser {
  email: string
  name: string | null
  role: Role
  passwordHash: string
}

export type UserPatch = Partial<Pick<UserRecord, 'name' | 'role' | 'passwordHash'>>

export interface SessionRecord {
  id: string
  userId: string
  createdAt: number
  expiresAt: number
  lastUsedAt: number
  revokedAt: number | null
  userAgent: string | null
  ip: string | null
}

export interface NewSession {
  userId: string
  expiresAt: number
  userAgent: string | null
  ip: string | null
}

export type RefreshOutcome =
  | { status: 'rotated', session: SessionRecord }
  | { status: 'reused', session: SessionRecord }
  | { status: 'invalid' }

export type KeyKind = 'held' | 'issued'
export type KeyStatus = 'active' | 'disabled' | 'expired' | 'revoked'
export type Environment = 'development' | 'staging' | 'production'

export interface KeyRateLimit {
  limit: number
  windowMs: number
  burst?: number
}

export interface KeyRecord {
  id: string
  ownerId: string
  kind: KeyKind
  name: string
  service: string | null
  description: string | null
  environment: Environment
  tags: string[]
  scopes: string[]
  metadata: Record<string, unknown>
  prefix: string
  start: string
  /** HMAC-SHA256 lookup hash of an issued key's secret; null for held keys. */
  hash: string | null
  version: number
  status: KeyStatus
  expiresAt: number | null
  rotationIntervalDays: number | null
  rotationDueAt: number | null
  monthlyLimit: number | null
  rateLimit: KeyRateLimit | null
  createdAt: number
  updatedAt: number
  lastUsedAt: number | null
}

export type NewKey = Omit<KeyRecord, 'ownerId' | 'createdAt' | 'updatedAt' | 'lastUsedAt'> & { createdAt?: number }

export type KeyPatch = Partial<Pick<KeyRecord,
  'name' | 'service' | 'description' | 'environment' | 'tags' | 'scopes' | 'metadata' | 'expiresAt' |
  'rotationIntervalDays' | 'rotationDueAt' | 'monthlyLimit' | 'rateLimit' | 'status' | 'hash' | 'start' |
  'prefix' | 'version' | 'lastUsedAt'>>

export type KeySortField = 'createdAt' | 'name' | 'lastUsedAt' | 'expiresAt'

export interface KeyListQuery {
  status?: KeyStatus
  kind?: KeyKind
  service?: string
  environment?: Environment
  tag?: string
  /** Case-insensitive substring over name, service, description and tags. */
  q?: string
  sort: KeySortField
  descending: boolean
  limit: number
  /** Position after which the page starts: the sort value and id of the last item seen. */
  after?: { value: string | number | null, id: string }
}

export interface Page<T> {
  items: T[]
  /** Set when more items follow; the position of the last item returned. */
  next: { value: string | number | null, id: string } | null
}

export interface StoreHealth {
  ok: boolean
  latencyMs: number
  error?: string
}

export interface Store {
  readonly kind: 'sqlite' | 'mongo'
  /** Applies migrations and indexes; safe to call any number of times. */
  init (): Promise<void>
  close (): Promise<void>
  ping (): Promise<StoreHealth>

  createUser (user: NewUser): Promise<UserRecord>
  getUser (id: string): Promise<UserRecord | null>
  findUserByEmail (email: string): Promise<UserRecord | null>
  updateUser (id: string, patch: UserPatch): Promise<UserRecord | null>
  /** Removes the user and everything the user owns. */
  deleteUser (id: string): Promise<boolean>

  createSession (session: NewSession, refreshHash: string): Promise<SessionRecord>
  getSession (userId: string, id: string): Promise<SessionRecord | null>
  listSessions (userId: string): Promise<SessionRecord[]>
  /**
   * Exchanges a refresh token (by hash) for a new one, atomically. A token used before revokes
   * its whole session (reuse detection); an unknown, expired or revoked one is invalid.
   */
  rotateRefreshToken (oldHash: string, newHash: string, now: number): Promise<RefreshOutcome>
  revokeSession (userId: string, id: string, now: number): Promise<boolean>
  /** Revokes every live session of the user except `exceptId`; returns how many. */
  revokeSessions (userId: string, now: number, exceptId?: string): Promise<number>

  createKey (ownerId: string, key: NewKey): Promise<KeyRecord>
  getKey (ownerId: string, id: string): Promise<KeyRecord | null>
  listKeys (ownerId: string, query: KeyListQuery): Promise<Page<KeyRecord>>
  updateKey (ownerId: string, id: string, patch: KeyPatch): Promise<KeyRecord | null>
  deleteKey (ownerId: string, id: string): Promise<boolean>
  /** The issued key with this lookup hash, scoped to its owner. */
  findKeyByHash (ownerId: string, hash: string): Promise<KeyRecord | null>
  /** Resolves a presented credential (an issued key) to its record; used only to authenticate callers. */
  findCredentialByHash (hash: string): Promise<KeyRecord | null>
}

export class DuplicateError extends Error {
  constructor (readonly field: string) {
    super(`duplicate ${field}`)
    this.name = 'DuplicateError'
  }
}
