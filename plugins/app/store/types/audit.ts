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

/**
 * Each owner's hash chain of audit events. Other aggregates append to it inside their own
 * transactions (their methods that take an `audit` input).
 */
export interface AuditStore {
  /** Appends an event to the owner's hash chain. */
  appendAudit (ownerId: string, input: AuditInput): Promise<AuditEvent>
  listAudit (ownerId: string, query: AuditQuery): Promise<AuditEvent[]>
  /** The owner's chain in order, from afterSeq, in bounded batches (verification reads it page by page). */
  auditChain (ownerId: string, afterSeq: number, limit: number): Promise<AuditEvent[]>
  /** The point a pruned chain starts from (seq 0 and the genesis hash when nothing was pruned). */
  auditAnchor (ownerId: string): Promise<{ seq: number, hash: string }>
  /** The seal of the owner's v1 events, or null when the owner had none when v2 links began. */
  auditSeal (ownerId: string): Promise<AuditSeal | null>
  /**
   * Maintenance: deletes audit events older than the time, oldest first per owner, and keeps each
   * owner's chain verifiable by recording the last deleted event as the chain's anchor.
   */
  purgeAudit (before: number, limit: number): Promise<number>
}
