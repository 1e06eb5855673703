import type { AuditInput } from './audit.ts'

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
  /** An encrypted copy of the current secret is kept (always for held keys). */
  recoverable: boolean
  expiresAt: number | null
  rotationIntervalDays: number | null
  rotationDueAt: number | null
  monthlyLimit: number | null
  rateLimit: KeyRateLimit | null
  createdAt: number
  updatedAt: number
  lastUsedAt: number | null
  revokedAt: number | null
}

export type NewKey = Omit<KeyRecord, 'ownerId' | 'createdAt' | 'updatedAt' | 'lastUsedAt' | 'revokedAt'> & { createdAt?: number }

/** One version of a key's secret: its lookup hash (issued keys) and sealed copy (when recoverable). */
export interface KeyVersionRecord {
  keyId: string
  ownerId: string
  version: number
  hash: string | null
  start: string
  ciphertext: string | null
  createdAt: number
  /** When a rotation replaced it; null for the current version. */
  retiredAt: number | null
  /** Until when a retired issued version still verifies. */
  graceEndsAt: number | null
}

export type NewKeyVersion = Pick<KeyVersionRecord, 'hash' | 'start' | 'ciphertext'>

export interface KeyStats {
  total: number
  byStatus: Record<string, number>
  byKind: Record<string, number>
  byService: Record<string, number>
  byEnvironment: Record<string, number>
  expiringSoon: number
  rotationDue: number
}

export interface RotationPlan {
  /** The key's new current state. */
  patch: KeyPatch & { version: number }
  next: NewKeyVersion
  /** Until when the replaced version still verifies (issued keys); null = stops at once. */
  graceEndsAt: number | null
  /** Versions kept: the current one and this many previous. */
  keepPrevious: number
  now: number
}

export type KeyPatch = Partial<Pick<KeyRecord,
  'name' | 'service' | 'description' | 'environment' | 'tags' | 'scopes' | 'metadata' | 'expiresAt' |
  'rotationIntervalDays' | 'rotationDueAt' | 'monthlyLimit' | 'rateLimit' | 'status' | 'hash' | 'start' |
  'prefix' | 'version' | 'lastUsedAt' | 'recoverable' | 'revokedAt'>>

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

/** Keys and their versions. */
export interface KeysStore {
  /** Creates the key, its first version and (optionally) its audit event in one transaction. */
  createKey (ownerId: string, key: NewKey, first?: NewKeyVersion, audit?: AuditInput): Promise<KeyRecord>
  getKey (ownerId: string, id: string): Promise<KeyRecord | null>
  listKeys (ownerId: string, query: KeyListQuery): Promise<Page<KeyRecord>>
  updateKey (ownerId: string, id: string, patch: KeyPatch, audit?: AuditInput): Promise<KeyRecord | null>
  /** Replaces the current version, retires the old one (with its grace) and prunes old versions, atomically. */
  rotateKey (ownerId: string, id: string, plan: RotationPlan, audit?: AuditInput): Promise<KeyRecord | null>
  /** Purges the key and its versions (revocation is an update; this is the cleanup job's). */
  deleteKey (ownerId: string, id: string): Promise<boolean>
  listKeyVersions (ownerId: string, keyId: string): Promise<KeyVersionRecord[]>
  getKeyVersion (ownerId: string, keyId: string, version: number): Promise<KeyVersionRecord | null>
  /** The issued key with this lookup hash, scoped to its owner. */
  findKeyByHash (ownerId: string, hash: string): Promise<KeyRecord | null>
  /** The key and the version (current or retired) a lookup hash belongs to, scoped to the owner. */
  findVersionByHash (ownerId: string, hash: string): Promise<{ key: KeyRecord, version: KeyVersionRecord } | null>
  /** Resolves a presented credential (an issued key) to its record; used only to authenticate callers. */
  findCredentialByHash (hash: string): Promise<KeyRecord | null>
  keyStats (ownerId: string, now: number): Promise<KeyStats>

  // Maintenance: system-wide and always in bounded batches (the jobs call these).
  /** Marks active keys past expiresAt as expired; returns those it changed. */
  expireKeys (now: number, limit: number): Promise<KeyRecord[]>
  /** Active keys whose expiresAt is in (from, to], by id after `afterId`. */
  keysExpiringBetween (from: number, to: number, afterId: string, limit: number): Promise<KeyRecord[]>
  keysRotationDue (now: number, afterId: string, limit: number): Promise<KeyRecord[]>
  keysWithMonthlyLimit (afterId: string, limit: number): Promise<KeyRecord[]>
  /** Deletes revoked keys (and their versions and usage) revoked before the time. */
  purgeRevokedKeys (revokedBefore: number, limit: number): Promise<number>
}
