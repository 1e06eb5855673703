import type {
  AuditEvent, DeliveryRecord, JobRunRecord, KeyRecord, KeyVersionRecord, NotificationRecord, SessionRecord, UserRecord,
  VaultRecord, WebhookRecord
} from '../types/index.ts'
import type { Row } from './connection.ts'

// Rows to records: JSON columns parsed, 0/1 columns read as booleans.

export function toUser (row: Row): UserRecord {
  return {
    id: row.id as string,
    email: row.email as string,
    name: row.name as string | null,
    role: row.role as UserRecord['role'],
    passwordHash: row.password_hash as string,
    createdAt: row.created_at as number,
    updatedAt: row.updated_at as number
  }
}

export function toSession (row: Row): SessionRecord {
  return {
    id: row.id as string,
    userId: row.user_id as string,
    createdAt: row.created_at as number,
    expiresAt: row.expires_at as number,
    lastUsedAt: row.last_used_at as number,
    revokedAt: row.revoked_at as number | null,
    userAgent: row.user_agent as string | null,
    ip: row.ip as string | null
  }
}

export function toKey (row: Row): KeyRecord {
  return {
    id: row.id as string,
    ownerId: row.owner_id as string,
    kind: row.kind as KeyRecord['kind'],
    name: row.name as string,
    service: row.service as string | null,
    description: row.description as string | null,
    environment: row.environment as KeyRecord['environment'],
    tags: JSON.parse(row.tags as string),
    scopes: JSON.parse(row.scopes as string),
    metadata: JSON.parse(row.metadata as string),
    prefix: row.prefix as string,
    start: row.start as string,
    hash: row.hash as string | null,
    version: row.version as number,
    status: row.status as KeyRecord['status'],
    expiresAt: row.expires_at as number | null,
    rotationIntervalDays: row.rotation_interval_days as number | null,
    rotationDueAt: row.rotation_due_at as number | null,
    monthlyLimit: row.monthly_limit as number | null,
    rateLimit: row.rate_limit === null ? null : JSON.parse(row.rate_limit as string),
    recoverable: row.recoverable === 1,
    createdAt: row.created_at as number,
    updatedAt: row.updated_at as number,
    lastUsedAt: row.last_used_at as number | null,
    revokedAt: row.revoked_at as number | null
  }
}

export function toVersion (row: Row): KeyVersionRecord {
  return {
    keyId: row.key_id as string,
    ownerId: row.owner_id as string,
    version: row.version as number,
    hash: row.hash as string | null,
    start: row.start as string,
    ciphertext: row.ciphertext as string | null,
    createdAt: row.created_at as number,
    retiredAt: row.retired_at as number | null,
    graceEndsAt: row.grace_ends_at as number | null
  }
}

export function toAudit (row: Row): AuditEvent {
  return {
    id: row.id as string,
    ownerId: row.owner_id as string,
    seq: row.seq as number,
    action: row.action as string,
    keyId: row.key_id as string | null,
    sessionId: row.session_id as string | null,
    ip: row.ip as string | null,
    detail: JSON.parse(row.detail as string),
    createdAt: row.created_at as number,
    prevHash: row.prev_hash as string,
    subjectDigest: row.subject_digest as string,
    anonymised: row.anonymised === 1,
    linkVersion: row.link_version as number,
    hash: row.hash as string
  }
}

export function toNotification (row: Row): NotificationRecord {
  return {
    id: row.id as string,
    ownerId: row.owner_id as string,
    type: row.type as NotificationRecord['type'],
    keyId: row.key_id as string | null,
    title: row.title as string,
    detail: JSON.parse(row.detail as string),
    dedupeKey: row.dedupe_key as string,
    createdAt: row.created_at as number,
    readAt: row.read_at as number | null
  }
}

export function toDelivery (row: Row): DeliveryRecord {
  return {
    id: row.id as string,
    ownerId: row.owner_id as string,
    eventId: row.event_id as string,
    url: row.url as string,
    payload: row.payload as string,
    status: row.status as DeliveryRecord['status'],
    attempts: row.attempts as number,
    nextAttemptAt: row.next_attempt_at as number,
    lastError: row.last_error as string | null,
    createdAt: row.created_at as number,
    deliveredAt: row.delivered_at as number | null
  }
}

export function toJobRun (row: Row): JobRunRecord {
  return {
    id: row.id as string,
    job: row.job as string,
    startedAt: row.started_at as number,
    durationMs: row.duration_ms as number,
    ok: row.ok === 1,
    result: JSON.parse(row.result as string),
    error: row.error as string | null
  }
}

export function toVault (row: Row): VaultRecord {
  return {
    userId: row.user_id as string,
    kdf: row.kdf as string,
    wrappedKey: row.wrapped_key as string,
    revision: row.revision as number,
    createdAt: row.created_at as number,
    updatedAt: row.updated_at as number
  }
}

export function toWebhook (row: Row): WebhookRecord {
  return {
    ownerId: row.owner_id as string,
    url: row.url as string,
    secret: row.secret as string,
    createdAt: row.created_at as number,
    updatedAt: row.updated_at as number
  }
}
