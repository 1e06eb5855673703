import type { AuditInput } from './audit.ts'

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

/** Sessions and their refresh tokens. */
export interface SessionsStore {
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
  /** Maintenance: deletes sessions (and their tokens) expired before the time, in a bounded batch. */
  purgeSessions (expiredBefore: number, limit: number): Promise<number>
}
