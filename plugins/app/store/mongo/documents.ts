import type { AuditSeal, DeliveryStatus, Environment, KeyKind, KeyRateLimit, KeyStatus, NotificationType, Role } from '../types/index.ts'

// The shapes stored in MongoDB: times are Dates (but a lease's), a record's id is `_id`.

export interface UserDoc {
  _id: string
  email: string
  name: string | null
  role: Role
  passwordHash: string
  createdAt: Date
  updatedAt: Date
  /** Set when the account is marked deleted; the document goes when the purge finishes. */
  deletedAt?: Date | null
}

export interface SessionDoc {
  _id: string
  userId: string
  createdAt: Date
  expiresAt: Date
  lastUsedAt: Date
  revokedAt: Date | null
  userAgent: string | null
  ip: string | null
}

export interface RefreshTokenDoc {
  _id: string
  sessionId: string
  userId: string
  createdAt: Date
  usedAt: Date | null
}

export interface KeyDoc {
  _id: string
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
  hash: string | null
  version: number
  status: KeyStatus
  /** Missing on keys written before versions existed; read as false. */
  recoverable?: boolean
  expiresAt: Date | null
  rotationIntervalDays: number | null
  rotationDueAt: Date | null
  monthlyLimit: number | null
  rateLimit: KeyRateLimit | null
  createdAt: Date
  updatedAt: Date
  lastUsedAt: Date | null
  revokedAt?: Date | null
  /** searchText() of the key, kept in step on every write so `q` is one regex over one field. */
  search: string
}

export interface KeyVersionDoc {
  /** `${keyId}:${version}` */
  _id: string
  keyId: string
  ownerId: string
  version: number
  hash: string | null
  start: string
  ciphertext: string | null
  createdAt: Date
  retiredAt: Date | null
  graceEndsAt: Date | null
}

export interface VaultDoc {
  /** The user's id. */
  _id: string
  kdf: string
  wrappedKey: string
  revision: number
  createdAt: Date
  updatedAt: Date
}

export interface AuditDoc {
  _id: string
  ownerId: string
  seq: number
  action: string
  keyId: string | null
  sessionId: string | null
  ip: string | null
  detail: Record<string, unknown>
  createdAt: Date
  prevHash: string
  subjectDigest: string
  anonymised: boolean
  /** Absent on events stored before link versions (and by older instances): those are v1. */
  linkVersion?: number
  hash: string
}

export interface UsageHourlyDoc {
  /** `${keyId}:${hour}` */
  _id: string
  keyId: string
  ownerId: string
  /** Start of the UTC hour. */
  hour: Date
  units: number
  requests: number
  /** Ids of the last flush batches applied here (recordUsage): a batch sent again is not counted twice. Absent on older counters. */
  batches?: string[]
}

export interface UsageMonthlyDoc {
  /** `${keyId}:${month}` */
  _id: string
  keyId: string
  ownerId: string
  /** Start of the UTC month. */
  month: Date
  units: number
  requests: number
  /** Ids of the last flush batches applied here (recordUsage): a batch sent again is not counted twice. Absent on older counters. */
  batches?: string[]
}

export interface IdempotencyDoc {
  /** `${ownerId}:${idempotencyKey}` */
  _id: string
  ownerId: string
  keyId: string
  createdAt: Date
}

export interface UsageDailyDoc {
  /** `${keyId}:${day}` */
  _id: string
  keyId: string
  ownerId: string
  /** Start of the UTC day. */
  day: Date
  units: number
  requests: number
}

export interface NotificationDoc {
  _id: string
  ownerId: string
  type: NotificationType
  keyId: string | null
  title: string
  detail: Record<string, unknown>
  dedupeKey: string
  createdAt: Date
  readAt: Date | null
}

export interface WebhookDoc {
  /** The owner's id: one webhook per owner. */
  _id: string
  url: string
  secret: string
  createdAt: Date
  updatedAt: Date
}

export interface DeliveryDoc {
  _id: string
  ownerId: string
  eventId: string
  url: string
  payload: string
  status: DeliveryStatus
  attempts: number
  nextAttemptAt: Date
  lastError: string | null
  createdAt: Date
  deliveredAt: Date | null
}

export interface JobRunDoc {
  _id: string
  job: string
  startedAt: Date
  durationMs: number
  ok: boolean
  result: Record<string, unknown>
  error: string | null
}

export interface StatsSnapshotDoc {
  /** The snapshot's time: one snapshot per instant. */
  _id: Date
  data: Record<string, unknown>
}

export interface LeaseDoc {
  /** The lease's name. */
  _id: string
  holder: string
  /** Epoch ms, a number: compared with the caller's `now`, never with the server's clock. */
  expiresAt: number
}

export interface AuditAnchorDoc {
  /** The owner's id. */
  _id: string
  seq: number
  hash: string
}

export interface AuditSealDoc extends AuditSeal {
  /** The owner's id. */
  _id: string
}

/** A one-time data migration, recorded once done. */
export interface MigrationDoc {
  _id: string
  appliedAt: Date
}
