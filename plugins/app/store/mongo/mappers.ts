import type { WithId } from 'mongodb'
import { searchText } from '../shared.ts'
import type {
  AuditEvent, DeliveryRecord, JobRunRecord, KeyRecord, KeyVersionRecord, NotificationRecord, SessionRecord, UsageTotal,
  UserRecord, VaultRecord, WebhookRecord
} from '../types/index.ts'
import type {
  AuditDoc, DeliveryDoc, JobRunDoc, KeyDoc, KeyVersionDoc, NotificationDoc, SessionDoc, UsageMonthlyDoc, UserDoc, VaultDoc,
  WebhookDoc
} from './documents.ts'

export function toDate (ms: number): Date {
  return new Date(ms)
}

export function toDateOrNull (ms: number | null): Date | null {
  return ms === null ? null : new Date(ms)
}

export function fromDateOrNull (date: Date | null | undefined): number | null {
  return date == null ? null : date.getTime()
}

/** Same bytes as the SQLite adapter's JSON column: undefined members dropped, only JSON values kept. */
export function jsonValue<T> (value: T): T {
  return value === null ? value : JSON.parse(JSON.stringify(value)) as T
}

export function toUser (doc: WithId<UserDoc>): UserRecord {
  return {
    id: doc._id,
    email: doc.email,
    name: doc.name ?? null,
    role: doc.role,
    passwordHash: doc.passwordHash,
    createdAt: doc.createdAt.getTime(),
    updatedAt: doc.updatedAt.getTime()
  }
}

export function toSession (doc: WithId<SessionDoc>): SessionRecord {
  return {
    id: doc._id,
    userId: doc.userId,
    createdAt: doc.createdAt.getTime(),
    expiresAt: doc.expiresAt.getTime(),
    lastUsedAt: doc.lastUsedAt.getTime(),
    revokedAt: fromDateOrNull(doc.revokedAt),
    userAgent: doc.userAgent ?? null,
    ip: doc.ip ?? null
  }
}

export function toKey (doc: WithId<KeyDoc>): KeyRecord {
  return {
    id: doc._id,
    ownerId: doc.ownerId,
    kind: doc.kind,
    name: doc.name,
    service: doc.service ?? null,
    description: doc.description ?? null,
    environment: doc.environment,
    tags: doc.tags ?? [],
    scopes: doc.scopes ?? [],
    metadata: doc.metadata ?? {},
    prefix: doc.prefix,
    start: doc.start,
    hash: doc.hash ?? null,
    version: doc.version,
    status: doc.status,
    recoverable: doc.recoverable === true,
    expiresAt: fromDateOrNull(doc.expiresAt),
    rotationIntervalDays: doc.rotationIntervalDays ?? null,
    rotationDueAt: fromDateOrNull(doc.rotationDueAt),
    monthlyLimit: doc.monthlyLimit ?? null,
    rateLimit: doc.rateLimit ?? null,
    createdAt: doc.createdAt.getTime(),
    updatedAt: doc.updatedAt.getTime(),
    lastUsedAt: fromDateOrNull(doc.lastUsedAt),
    revokedAt: fromDateOrNull(doc.revokedAt)
  }
}

export function toVersion (doc: WithId<KeyVersionDoc>): KeyVersionRecord {
  return {
    keyId: doc.keyId,
    ownerId: doc.ownerId,
    version: doc.version,
    hash: doc.hash ?? null,
    start: doc.start,
    ciphertext: doc.ciphertext ?? null,
    createdAt: doc.createdAt.getTime(),
    retiredAt: fromDateOrNull(doc.retiredAt),
    graceEndsAt: fromDateOrNull(doc.graceEndsAt)
  }
}

export function toVault (doc: WithId<VaultDoc>): VaultRecord {
  return {
    userId: doc._id,
    kdf: doc.kdf,
    wrappedKey: doc.wrappedKey,
    revision: doc.revision,
    createdAt: doc.createdAt.getTime(),
    updatedAt: doc.updatedAt.getTime()
  }
}

export function toUsageTotal (doc: WithId<UsageMonthlyDoc>): UsageTotal {
  return { keyId: doc.keyId, month: doc.month.getTime(), units: doc.units, requests: doc.requests }
}

export function toAudit (doc: WithId<AuditDoc>): AuditEvent {
  return {
    id: doc._id,
    ownerId: doc.ownerId,
    seq: doc.seq,
    action: doc.action,
    keyId: doc.keyId ?? null,
    sessionId: doc.sessionId ?? null,
    ip: doc.ip ?? null,
    detail: doc.detail ?? {},
    createdAt: doc.createdAt.getTime(),
    prevHash: doc.prevHash,
    subjectDigest: doc.subjectDigest,
    anonymised: doc.anonymised === true,
    linkVersion: doc.linkVersion ?? 1,
    hash: doc.hash
  }
}

export function toNotification (doc: WithId<NotificationDoc>): NotificationRecord {
  return {
    id: doc._id,
    ownerId: doc.ownerId,
    type: doc.type,
    keyId: doc.keyId ?? null,
    title: doc.title,
    detail: doc.detail ?? {},
    dedupeKey: doc.dedupeKey,
    createdAt: doc.createdAt.getTime(),
    readAt: fromDateOrNull(doc.readAt)
  }
}

export function toWebhook (doc: WithId<WebhookDoc>): WebhookRecord {
  return { ownerId: doc._id, url: doc.url, secret: doc.secret, createdAt: doc.createdAt.getTime(), updatedAt: doc.updatedAt.getTime() }
}

export function toDelivery (doc: WithId<DeliveryDoc>): DeliveryRecord {
  return {
    id: doc._id,
    ownerId: doc.ownerId,
    eventId: doc.eventId,
    url: doc.url,
    payload: doc.payload,
    status: doc.status,
    attempts: doc.attempts,
    nextAttemptAt: doc.nextAttemptAt.getTime(),
    lastError: doc.lastError ?? null,
    createdAt: doc.createdAt.getTime(),
    deliveredAt: fromDateOrNull(doc.deliveredAt)
  }
}

export function toJobRun (doc: WithId<JobRunDoc>): JobRunRecord {
  return {
    id: doc._id,
    job: doc.job,
    startedAt: doc.startedAt.getTime(),
    durationMs: doc.durationMs,
    ok: doc.ok === true,
    result: doc.result ?? {},
    error: doc.error ?? null
  }
}

/** The stored form of a new key, with the search text kept in step. */
export function toKeyDoc (record: KeyRecord): KeyDoc {
  return {
    _id: record.id,
    ownerId: record.ownerId,
    kind: record.kind,
    name: record.name,
    service: record.service,
    description: record.description,
    environment: record.environment,
    tags: jsonValue(record.tags),
    scopes: jsonValue(record.scopes),
    metadata: jsonValue(record.metadata),
    prefix: record.prefix,
    start: record.start,
    hash: record.hash,
    version: record.version,
    status: record.status,
    recoverable: record.recoverable,
    expiresAt: toDateOrNull(record.expiresAt),
    rotationIntervalDays: record.rotationIntervalDays,
    rotationDueAt: toDateOrNull(record.rotationDueAt),
    monthlyLimit: record.monthlyLimit,
    rateLimit: jsonValue(record.rateLimit),
    createdAt: toDate(record.createdAt),
    updatedAt: toDate(record.updatedAt),
    lastUsedAt: toDateOrNull(record.lastUsedAt),
    revokedAt: toDateOrNull(record.revokedAt),
    search: searchText(record)
  }
}
