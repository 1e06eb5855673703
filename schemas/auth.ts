import { Type } from 'typebox'
import { SAFE_TEXT, Timestamp, Nullable } from './common.ts'
import { AuditEventView } from './audit.ts'
import { KeyView } from './keys.ts'

// Emails are trimmed and lower-cased by the service, which also checks their form strictly.
const Email = Type.String({ minLength: 3, maxLength: 320, description: 'Trimmed and lower-cased before use' })
const Password = Type.String({ minLength: 10, maxLength: 256, description: '10 to 256 characters, not the email address' })
const AnyPassword = Type.String({ minLength: 1, maxLength: 256 })
const Name = Type.String({ minLength: 1, maxLength: 100, pattern: SAFE_TEXT })

export const User = Type.Object({
  id: Type.String(),
  email: Type.String(),
  name: Nullable(Type.String()),
  role: Type.Union([Type.Literal('user'), Type.Literal('admin')]),
  createdAt: Timestamp,
  updatedAt: Timestamp
}, { additionalProperties: false })

export const TokenPair = Type.Object({
  tokenType: Type.Literal('Bearer'),
  accessToken: Type.String({ description: 'JWT for Authorization: Bearer' }),
  refreshToken: Type.String({ description: 'Single use: exchanging it returns a new one' }),
  expiresIn: Type.Integer({ description: 'Access token lifetime in seconds' }),
  user: User
}, { additionalProperties: false })

export const RegisterBody = Type.Object({
  email: Email,
  password: Password,
  name: Type.Optional(Name)
}, { additionalProperties: false })

export const LoginBody = Type.Object({
  email: Email,
  password: AnyPassword
}, { additionalProperties: false })

export const RefreshBody = Type.Object({
  refreshToken: Type.String({ minLength: 1, maxLength: 512 })
}, { additionalProperties: false })

export const UpdateMeBody = Type.Object({
  name: Nullable(Name)
}, { additionalProperties: false })

export const ChangePasswordBody = Type.Object({
  currentPassword: AnyPassword,
  newPassword: Password
}, { additionalProperties: false })

export const DeleteMeBody = Type.Object({
  password: AnyPassword
}, { additionalProperties: false })

export const Session = Type.Object({
  id: Type.String(),
  current: Type.Boolean(),
  createdAt: Timestamp,
  lastUsedAt: Timestamp,
  expiresAt: Timestamp,
  revokedAt: Nullable(Timestamp),
  userAgent: Nullable(Type.String()),
  ip: Nullable(Type.String())
}, { additionalProperties: false })

export const SessionList = Type.Object({ items: Type.Array(Session), nextCursor: Type.Null({ description: 'One page: expired sessions are purged weekly' }) }, { additionalProperties: false })

export const LogoutAllResult = Type.Object({ revoked: Type.Integer() }, { additionalProperties: false })

export const AccountExport = Type.Object({
  exportedAt: Timestamp,
  user: User,
  sessions: Type.Array(Session),
  keys: Type.Array(KeyView, { description: 'Key metadata (never secrets or hashes)' }),
  audit: Type.Array(AuditEventView, { description: 'The account\'s audit trail, oldest first' })
}, { additionalProperties: false })

/** The console's sign-in answer: the refresh token travels in an HttpOnly cookie instead. */
export const ConsoleSession = Type.Object({
  tokenType: Type.Literal('Bearer'),
  accessToken: Type.String({ description: 'JWT for Authorization: Bearer; keep it in memory only' }),
  expiresIn: Type.Integer({ description: 'Access token lifetime in seconds' }),
  user: User
}, { additionalProperties: false })

export const CsrfToken = Type.Object({
  csrfToken: Type.String({ description: 'Send it as the x-csrf-token header on the console\'s POST routes' })
}, { additionalProperties: false })

export const ConsoleRefreshBody = Type.Object({}, { additionalProperties: false })

export const ConsoleLogoutBody = Type.Object({
  everywhere: Type.Optional(Type.Boolean({ description: 'End every session of the account, not only this one' }))
}, { additionalProperties: false })
