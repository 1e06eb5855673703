import type { SessionRecord } from '../store/types/index.ts'
import { iso } from '../time.ts'

/** The API's view of a session; `current` marks the one the request came with. */
export function sessionView (session: SessionRecord, currentId: string) {
  return {
    id: session.id,
    current: session.id === currentId,
    createdAt: iso(session.createdAt),
    lastUsedAt: iso(session.lastUsedAt),
    expiresAt: iso(session.expiresAt),
    revokedAt: iso(session.revokedAt),
    userAgent: session.userAgent,
    ip: session.ip
  }
}
