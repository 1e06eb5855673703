import { createHash } from 'node:crypto'
import type { AuditEvent, AuditInput, KeyRecord, KeySortField, Store } from './types.ts'

/** The lower-cased text that `q` searches: name, service, description and tags. */
export function searchText (key: Pick<KeyRecord, 'name' | 'service' | 'description' | 'tags'>): string {
  return [key.name, key.service ?? '', key.description ?? '', ...key.tags].join('\n').toLowerCase()
}

/** The value a key sorts by, as both adapters compare it (a missing time sorts lowest). */
export function sortValue (key: KeyRecord, field: KeySortField): string | number | null {
  return key[field]
}

/** JSON with object keys sorted, so equal values always hash alike. */
export function canonicalJson (value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null'
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  const entries = Object.keys(value as object).sort()
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
  return `{${entries.join(',')}}`
}

export const GENESIS_HASH = '0'.repeat(64)

/**
 * Digest of an event's personal fields. The chain covers this digest, so anonymising a deleted
 * account's events (blanking these fields, keeping the digest) leaves the chain verifiable.
 */
export function auditSubjectDigest (event: Pick<AuditEvent, 'ownerId' | 'sessionId' | 'ip' | 'detail'>): string {
  return createHash('sha256').update(canonicalJson([event.ownerId, event.sessionId, event.ip, event.detail])).digest('hex')
}

/** The chain link of an audit event: it covers the event and the hash of the one before it. */
export function auditHash (event: Pick<AuditEvent, 'seq' | 'action' | 'keyId' | 'createdAt' | 'prevHash' | 'subjectDigest'>): string {
  return createHash('sha256').update(canonicalJson([
    event.seq, event.action, event.keyId, event.createdAt, event.prevHash, event.subjectDigest
  ])).digest('hex')
}

/** Builds the next event of an owner's chain from the last one (or the genesis). */
export function nextAuditEvent (id: string, ownerId: string, last: { seq: number, hash: string } | null, input: AuditInput, now: number): AuditEvent {
  const personal = { ownerId, sessionId: input.sessionId ?? null, ip: input.ip ?? null, detail: input.detail ?? {} }
  const base = {
    ...personal,
    seq: (last?.seq ?? 0) + 1,
    action: input.action,
    keyId: input.keyId ?? null,
    createdAt: now,
    prevHash: last?.hash ?? GENESIS_HASH,
    subjectDigest: auditSubjectDigest(personal),
    anonymised: false
  }
  return { id, ...base, hash: auditHash(base) }
}

/** An anonymised owner id for a deleted account's events (a one-way tag, not the id itself). */
export function anonymousOwner (userId: string): string {
  return 'deleted:' + createHash('sha256').update(userId).digest('hex').slice(0, 24)
}

/** Start of the UTC month containing `ms`. */
export function monthStart (ms: number): number {
  const d = new Date(ms)
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1)
}

/** Start of the next UTC month after the one containing `ms`. */
export function nextMonthStart (ms: number): number {
  const d = new Date(ms)
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1)
}

export const HOUR_MS = 3_600_000

export function hourStart (ms: number): number {
  return ms - (ms % HOUR_MS)
}

/** Every key of an owner, read page by page (exports, summaries, account deletion). */
export async function listAllKeys (store: Store, ownerId: string): Promise<KeyRecord[]> {
  const keys: KeyRecord[] = []
  let after
  for (;;) {
    const page = await store.listKeys(ownerId, { sort: 'createdAt', descending: false, limit: 100, after })
    keys.push(...page.items)
    if (page.next === null) return keys
    after = page.next
  }
}
