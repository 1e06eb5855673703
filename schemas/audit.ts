import { Type } from 'typebox'
import { Timestamp, Nullable } from './common.ts'

export const AuditEventView = Type.Object({
  id: Type.String(),
  seq: Type.Integer(),
  action: Type.String(),
  keyId: Nullable(Type.String()),
  sessionId: Nullable(Type.String()),
  ip: Nullable(Type.String()),
  detail: Type.Record(Type.String(), Type.Unknown()),
  createdAt: Timestamp,
  hash: Type.String()
}, { additionalProperties: false })

export const AuditQuery = Type.Object({
  action: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z_.]+$' })),
  keyId: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 50 })),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 32 }))
}, { additionalProperties: false })

export const AuditList = Type.Object({
  items: Type.Array(AuditEventView),
  nextCursor: Nullable(Type.String())
}, { additionalProperties: false })

export const ChainReport = Type.Object({
  valid: Type.Boolean(),
  events: Type.Integer({ description: 'Events checked' }),
  brokenAt: Type.Union([Type.Object({
    seq: Type.Integer(),
    reason: Type.Union([Type.Literal('edited'), Type.Literal('missing'), Type.Literal('reordered')])
  }, { additionalProperties: false }), Type.Null()]),
  lastHash: Type.String()
}, { additionalProperties: false })
