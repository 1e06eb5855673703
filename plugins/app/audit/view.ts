import type { AuditEvent } from '../store/types/index.ts'
import { iso } from '../time.ts'

/** The API's view of an audit event. */
export function auditView (event: AuditEvent) {
  return {
    id: event.id,
    seq: event.seq,
    action: event.action,
    keyId: event.keyId,
    sessionId: event.sessionId,
    ip: event.ip,
    detail: event.detail,
    createdAt: iso(event.createdAt),
    hash: event.hash
  }
}
