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

/** A user's vault: the data key wrapped under a key derived from the passphrase. */
export interface VaultRecord {
  userId: string
  /** The key-derivation function and its parameters and salt, self-describing. */
  kdf: string
  wrappedKey: string
  /** Incremented on every change; a change names the version it replaces (compare and set). */
  revision: number
  createdAt: number
  updatedAt: number
}

export interface AuditInput {
  action: string
  keyId?: string | null
  sessionId?: string | null
  ip?: string | null
  detail?: Record<string, unknown>
}

export interface AuditEvent {
  id: string
  ownerId: string
  seq: number
  action: string
  keyId: string | null
  sessionId: string | null
  ip: string | null
  detail: Record<string, unknown>
  createdAt: number
  prevHash: string
  /** Digest of ownerId, sessionId, ip and detail; the chain covers it instead of the fields. */
  subjectDigest: string
  /** The account was deleted: personal fields are blanked, the digest is kept. */
  anonymised: boolean
  /** How `hash` was computed: 1 = SHA-256 (events stored before 2), 2 = HMAC under the server's key. */
  linkVersion: number
  hash: string
}

/** Where an owner's v1 events end (seq and hash of the last one), sealed with an HMAC when v2 links began. */
export interface AuditSeal {
  seq: number
  hash: string
  mac: string
}

export interface AuditQuery {
  action?: string
  keyId?: string
  limit: number
  /** Newest first: return events with seq below this. */
  beforeSeq?: number
}

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

/** Usage of one key in one UTC hour, as the meter flushes it. */
export interface UsageDelta {
  ownerId: string
  keyId: string
  /** Start of the UTC hour, epoch ms. */
  hour: number
  units: number
  requests: number
  lastUsedAt: number
}

export interface UsageTotal { keyId: string, month: number, units: number, requests: number }
export interface UsagePoint { hour: number, units: number, requests: number }

export type NotificationType = 'quota_80' | 'quota_100' | 'expiring_soon' | 'rotation_due' | 'expired'

export interface NotificationRecord {
  id: string
  ownerId: string
  type: NotificationType
  keyId: string | null
  title: string
  detail: Record<string, unknown>
  /** One notification per dedupe key and owner: running a job twice notifies once. */
  dedupeKey: string
  createdAt: number
  readAt: number | null
}

export type NewNotification = Pick<NotificationRecord, 'type' | 'keyId' | 'title' | 'detail' | 'dedupeKey'>

export interface WebhookRecord { ownerId: string, url: string, secret: string, createdAt: number, updatedAt: number }

export type DeliveryStatus = 'pending' | 'delivered' | 'failed'

export interface DeliveryRecord {
  id: string
  ownerId: string
  /** The event delivered; one delivery per event. */
  eventId: string
  url: string
  payload: string
  status: DeliveryStatus
  attempts: number
  nextAttemptAt: number
  lastError: string | null
  createdAt: number
  deliveredAt: number | null
}

export type NewDelivery = Pick<DeliveryRecord, 'ownerId' | 'eventId' | 'url' | 'payload'>

export interface JobRunRecord {
  id: string
  job: string
  startedAt: number
  durationMs: number
  ok: boolean
  result: Record<string, unknown>
  error: string | null
}

export interface StatsSnapshot { at: number, data: Record<string, unknown> }

export interface SystemCounts { users: number, keys: number, activeKeys: number, sessions: number, unreadNotifications: number, pendingDeliveries: number }

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
  updateUser (id: string, patch: UserPatch, audit?: AuditInput): Promise<UserRecord | null>
  /** Removes the user and everything the user owns; audit events stay, anonymised. */
  deleteUser (id: string): Promise<boolean>

  createSession (session: NewSession, refreshHash: string): Promise<SessionRecord>
  getSession (userId: string, id: string): Promise<SessionRecord | null>
  listSessions (userId: string): Promise<SessionRecord[]>
  /**
   * Exchanges a refresh token (by hash) for a new one, atomically. A token used before revokes
   * its whole session (reuse detection); an unknown, expired or revoked one is invalid.
   */
  rotateRefreshToken (oldHash: string, newHash: string, now: number): Promise<RefreshOutcome>
  revokeSession (userId: string, id: string, now: number, audit?: AuditInput): Promise<boolean>
  /** Revokes every live session of the user except `exceptId`; returns how many. */
  revokeSessions (userId: string, now: number, exceptId?: string, audit?: AuditInput): Promise<number>

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

  /**
   * Adds usage deltas (hourly and monthly counters, and lastUsedAt) in one transaction and
   * returns the new monthly totals of the keys touched. Increments commute, so every process
   * flushes only its own deltas.
   */
  recordUsage (deltas: UsageDelta[]): Promise<UsageTotal[]>
  /**
   * Records usage once per idempotency key: a retry with the same key changes nothing and
   * answers duplicate: true.
   */
  recordUsageOnce (ownerId: string, idempotencyKey: string, delta: UsageDelta): Promise<{ duplicate: boolean, total: UsageTotal }>
  /** Monthly totals of the owner's keys for the month starting at `month` (all keys when keyIds is omitted). */
  monthlyUsage (ownerId: string, month: number, keyIds?: string[]): Promise<UsageTotal[]>
  /** Hourly usage of one key in [fromHour, toHour). */
  usageSeries (ownerId: string, keyId: string, fromHour: number, toHour: number): Promise<UsagePoint[]>

  createNotification (ownerId: string, notification: NewNotification): Promise<NotificationRecord | null>
  /** Newest first; `beforeId` continues after the last one seen. */
  listNotifications (ownerId: string, query: { limit: number, beforeId?: string, unreadOnly?: boolean }): Promise<NotificationRecord[]>
  markNotificationRead (ownerId: string, id: string, now: number): Promise<NotificationRecord | null>

  getWebhook (ownerId: string): Promise<WebhookRecord | null>
  setWebhook (ownerId: string, webhook: { url: string, secret: string } | null): Promise<WebhookRecord | null>
  /** Queues a delivery once per event (null when the event was queued before). */
  enqueueDelivery (delivery: NewDelivery, now: number): Promise<DeliveryRecord | null>
  dueDeliveries (now: number, limit: number): Promise<DeliveryRecord[]>
  getDelivery (id: string): Promise<DeliveryRecord | null>
  updateDelivery (id: string, patch: Partial<Pick<DeliveryRecord, 'status' | 'attempts' | 'nextAttemptAt' | 'lastError' | 'deliveredAt'>>): Promise<void>

  // Maintenance: system-wide and always in bounded batches (the jobs call these).
  /** Marks active keys past expiresAt as expired; returns those it changed. */
  expireKeys (now: number, limit: number): Promise<KeyRecord[]>
  /** Active keys whose expiresAt is in (from, to], by id after `afterId`. */
  keysExpiringBetween (from: number, to: number, afterId: string, limit: number): Promise<KeyRecord[]>
  keysRotationDue (now: number, afterId: string, limit: number): Promise<KeyRecord[]>
  keysWithMonthlyLimit (afterId: string, limit: number): Promise<KeyRecord[]>
  /** Deletes revoked keys (and their versions and usage) revoked before the time. */
  purgeRevokedKeys (revokedBefore: number, limit: number): Promise<number>
  purgeUsageHourly (before: number, limit: number): Promise<number>
  purgeSessions (expiredBefore: number, limit: number): Promise<number>
  purgeIdempotency (before: number, limit: number): Promise<number>
  /**
   * Deletes audit events older than the time, oldest first per owner, and keeps each owner's
   * chain verifiable by recording the last deleted event as the chain's anchor.
   */
  purgeAudit (before: number, limit: number): Promise<number>
  /** The point a pruned chain starts from (seq 0 and the genesis hash when nothing was pruned). */
  auditAnchor (ownerId: string): Promise<{ seq: number, hash: string }>
  /** The seal of the owner's v1 events, or null when the owner had none when v2 links began. */
  auditSeal (ownerId: string): Promise<AuditSeal | null>
  /** Recomputes daily totals from hourly counters for the UTC days touching [fromHour, toHour); idempotent. */
  rollupDaily (fromHour: number, toHour: number): Promise<number>
  usageDaily (ownerId: string, keyId: string, fromDay: number, toDay: number): Promise<UsagePoint[]>

  recordJobRun (run: Omit<JobRunRecord, 'id'>): Promise<JobRunRecord>
  jobRuns (job: string, limit: number): Promise<JobRunRecord[]>
  saveStatsSnapshot (snapshot: StatsSnapshot): Promise<void>
  statsSnapshots (from: number, to: number, limit: number): Promise<StatsSnapshot[]>
  purgeStatsSnapshots (before: number): Promise<number>
  systemCounts (now: number): Promise<SystemCounts>
  /** A named lease for one holder at a time (one scheduler among processes). */
  acquireLease (name: string, holder: string, ttlMs: number, now: number): Promise<boolean>
  releaseLease (name: string, holder: string): Promise<void>

  getVault (userId: string): Promise<VaultRecord | null>
  /**
   * Creates (expectedRevision null) or replaces (expectedRevision = the current one) the vault;
   * false when another change got there first.
   */
  saveVault (userId: string, vault: Pick<VaultRecord, 'kdf' | 'wrappedKey'>, expectedRevision: number | null, audit?: AuditInput): Promise<boolean>

  /** Appends an event to the owner's hash chain. */
  appendAudit (ownerId: string, input: AuditInput): Promise<AuditEvent>
  listAudit (ownerId: string, query: AuditQuery): Promise<AuditEvent[]>
  /** The owner's chain in order, from afterSeq, in bounded batches (verification reads it page by page). */
  auditChain (ownerId: string, afterSeq: number, limit: number): Promise<AuditEvent[]>
}

/** A change to a revoked key, refused inside the store's transaction (revocation is final). */
export class KeyRevokedError extends Error {
  constructor () {
    super('the key is revoked')
    this.name = 'KeyRevokedError'
  }
}

/**
 * The store could not take its write lock in time (another process holds it). Nothing was
 * written; the request may be retried.
 */
export class StoreBusyError extends Error {
  constructor () {
    super('the store is busy')
    this.name = 'StoreBusyError'
  }
}

export class DuplicateError extends Error {
  constructor (readonly field: string) {
    super(`duplicate ${field}`)
    this.name = 'DuplicateError'
  }
}
