import { createHash, createHmac, hkdfSync } from 'node:crypto'
import { anonymousOwner, canonicalJson, GENESIS_HASH, isAnonymousOwner } from './shared.ts'
import type { AuditEvent, AuditInput, AuditSeal } from './types/index.ts'

/**
 * The link version written today. v1 (plain SHA-256, recomputable by anyone who can write the
 * database) is only read, for events stored before v2; see docs/decisions/004-audit-chain.md.
 */
export const AUDIT_LINK_VERSION = 2

/**
 * Digest of an event's personal fields. The chain covers this digest, so anonymising a deleted
 * account's events (blanking these fields, keeping the digest) leaves the chain verifiable.
 */
export function auditSubjectDigest (event: Pick<AuditEvent, 'ownerId' | 'sessionId' | 'ip' | 'detail'>): string {
  return createHash('sha256').update(canonicalJson([event.ownerId, event.sessionId, event.ip, event.detail])).digest('hex')
}

/** The v1 link: SHA-256 of the event's fields and the previous hash. */
export function auditLinkV1 (event: Pick<AuditEvent, 'seq' | 'action' | 'keyId' | 'createdAt' | 'prevHash' | 'subjectDigest'>): string {
  return createHash('sha256').update(canonicalJson([
    event.seq, event.action, event.keyId, event.createdAt, event.prevHash, event.subjectDigest
  ])).digest('hex')
}

/** The tag a chain is bound to: a deleted owner's id, or the id the owner will have once deleted. */
export function chainOwnerTag (ownerId: string): string {
  return isAnonymousOwner(ownerId) ? ownerId : anonymousOwner(ownerId)
}

/**
 * Links audit events with an HMAC under a key derived from the server's secret, so that someone
 * who can write the database but cannot read the server's secrets cannot recompute the chain.
 */
export class AuditChain {
  readonly #key: Buffer

  constructor (serverSecret: string) {
    this.#key = Buffer.from(hkdfSync('sha256', serverSecret, 'keyward', 'keyward audit chain v2', 32))
  }

  /** The v2 link: every stored field but the personal ones (the digest covers those) and the owner's tag. */
  link (event: Pick<AuditEvent, 'id' | 'seq' | 'action' | 'keyId' | 'createdAt' | 'prevHash' | 'subjectDigest'>, ownerTag: string): string {
    return createHmac('sha256', this.#key).update(canonicalJson([
      AUDIT_LINK_VERSION, ownerTag, event.id, event.seq, event.action, event.keyId, event.createdAt, event.prevHash, event.subjectDigest
    ])).digest('hex')
  }

  /** Seals the last v1 event of an owner's chain: no v1 event is accepted past it. */
  seal (ownerId: string, seq: number, hash: string): AuditSeal {
    return { seq, hash, mac: this.sealMac(chainOwnerTag(ownerId), seq, hash) }
  }

  private sealMac (ownerTag: string, seq: number, hash: string): string {
    return createHmac('sha256', this.#key).update(canonicalJson(['v1 seal', ownerTag, seq, hash])).digest('hex')
  }

  /** Builds the next event of an owner's chain from the last one (or the genesis). */
  next (id: string, ownerId: string, last: { seq: number, hash: string } | null, input: AuditInput, now: number): AuditEvent {
    const personal = { ownerId, sessionId: input.sessionId ?? null, ip: input.ip ?? null, detail: input.detail ?? {} }
    const base = {
      id,
      ...personal,
      seq: (last?.seq ?? 0) + 1,
      action: input.action,
      keyId: input.keyId ?? null,
      createdAt: now,
      prevHash: last?.hash ?? GENESIS_HASH,
      subjectDigest: auditSubjectDigest(personal),
      anonymised: false,
      linkVersion: AUDIT_LINK_VERSION
    }
    return { ...base, hash: this.link(base, chainOwnerTag(ownerId)) }
  }

  /**
   * The owner's v1 seal if its MAC holds, else null (then no v1 event verifies: a removed or
   * edited seal cannot widen what v1 links are trusted for).
   */
  trustedSeal (ownerId: string, seal: AuditSeal | null): AuditSeal | null {
    return seal !== null && seal.mac === this.sealMac(chainOwnerTag(ownerId), seal.seq, seal.hash) ? seal : null
  }

  /**
   * Whether an event is as its chain wrote it. Every stored field is covered: the link covers the
   * event's own fields, the digest the personal ones, and `anonymised` must match the owner's state
   * (only account deletion anonymises, every event of the owner at once, with the personal fields blanked).
   */
  intact (event: AuditEvent, ownerTag: string, deleted: boolean, v1Seal: AuditSeal | null): boolean {
    if (event.anonymised !== deleted) return false
    const personalOk = event.anonymised
      ? event.sessionId === null && event.ip === null && canonicalJson(event.detail) === '{}'
      : event.subjectDigest === auditSubjectDigest(event)
    if (!personalOk) return false
    if (event.linkVersion === AUDIT_LINK_VERSION) return event.hash === this.link(event, ownerTag)
    // A v1 link is only as strong as SHA-256 without a key: trusted up to the sealed last v1 event, never after.
    return event.linkVersion === 1 && v1Seal !== null && event.seq <= v1Seal.seq &&
      (event.seq < v1Seal.seq || event.hash === v1Seal.hash) && event.hash === auditLinkV1(event)
  }
}
