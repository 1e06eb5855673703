import { AppError } from '../errors.ts'
import { chainOwnerTag, type AuditChain } from '../store/audit-chain.ts'
import { isAnonymousOwner } from '../store/shared.ts'
import type { AuditEvent, AuditStore } from '../store/types/index.ts'

const BATCH = 500

export interface ChainReport {
  valid: boolean
  events: number
  /** The first event that does not fit the chain, and why. */
  brokenAt: { seq: number, reason: 'edited' | 'missing' | 'reordered' } | null
  lastHash: string
}

/** Reads and checks a user's hash-chained audit trail. */
export class AuditService {
  constructor (private readonly store: AuditStore, private readonly chain: AuditChain) {}

  async list (ownerId: string, query: { action?: string, keyId?: string, limit?: number, cursor?: string }) {
    let beforeSeq: number | undefined
    if (query.cursor !== undefined) {
      beforeSeq = /^[1-9]\d{0,15}$/.test(query.cursor) ? Number(query.cursor) : NaN
      if (Number.isNaN(beforeSeq)) throw new AppError(400, 'INVALID_CURSOR', 'The cursor is malformed')
    }
    const limit = query.limit ?? 50
    const events = await this.store.listAudit(ownerId, { action: query.action, keyId: query.keyId, limit: limit + 1, beforeSeq })
    const items = events.slice(0, limit)
    const last = items[items.length - 1]
    return { items, nextCursor: events.length > limit && last !== undefined ? String(last.seq) : null }
  }

  /** The whole trail, oldest first, read in batches. */
  async all (ownerId: string): Promise<AuditEvent[]> {
    const events: AuditEvent[] = []
    const anchor = await this.store.auditAnchor(ownerId)
    for (;;) {
      const batch = await this.store.auditChain(ownerId, events.length === 0 ? anchor.seq : (events[events.length - 1] as AuditEvent).seq, BATCH)
      events.push(...batch)
      if (batch.length < BATCH) return events
    }
  }

  /** Walks the whole chain in batches, recomputing every link. */
  async verify (ownerId: string): Promise<ChainReport> {
    // Events past retention were pruned; the chain continues from the anchor they left.
    const anchor = await this.store.auditAnchor(ownerId)
    const v1Seal = this.chain.trustedSeal(ownerId, await this.store.auditSeal(ownerId))
    const ownerTag = chainOwnerTag(ownerId)
    const deleted = isAnonymousOwner(ownerId)
    let prevHash = anchor.hash
    let expectedSeq = anchor.seq + 1
    let count = 0
    for (;;) {
      const batch: AuditEvent[] = await this.store.auditChain(ownerId, expectedSeq - 1, BATCH)
      for (const event of batch) {
        count++
        if (event.seq !== expectedSeq || event.prevHash !== prevHash) {
          return { valid: false, events: count, brokenAt: { seq: event.seq, reason: event.seq > expectedSeq ? 'missing' : 'reordered' }, lastHash: prevHash }
        }
        if (!this.chain.intact(event, ownerTag, deleted, v1Seal)) {
          return { valid: false, events: count, brokenAt: { seq: event.seq, reason: 'edited' }, lastHash: prevHash }
        }
        prevHash = event.hash
        expectedSeq++
      }
      if (batch.length < BATCH) {
        // The sealed last v1 event must still be there: v1 events cut back and rewritten would verify otherwise.
        if (v1Seal !== null && expectedSeq <= v1Seal.seq) {
          return { valid: false, events: count, brokenAt: { seq: expectedSeq, reason: 'missing' }, lastHash: prevHash }
        }
        return { valid: true, events: count, brokenAt: null, lastHash: prevHash }
      }
    }
  }
}
