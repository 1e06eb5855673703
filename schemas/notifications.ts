import { Type } from 'typebox'
import { Nullable, Timestamp } from './common.ts'

export const NotificationView = Type.Object({
  id: Type.String(),
  type: Type.Union([Type.Literal('quota_80'), Type.Literal('quota_100'), Type.Literal('expiring_soon'), Type.Literal('rotation_due'), Type.Literal('expired')]),
  keyId: Nullable(Type.String()),
  title: Type.String(),
  detail: Type.Record(Type.String(), Type.Unknown()),
  createdAt: Timestamp,
  readAt: Nullable(Timestamp)
}, { additionalProperties: false })

export const NotificationQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 50 })),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  unread: Type.Optional(Type.Boolean())
}, { additionalProperties: false })

export const NotificationList = Type.Object({
  items: Type.Array(NotificationView),
  nextCursor: Nullable(Type.String())
}, { additionalProperties: false })

export const WebhookBody = Type.Object({
  url: Type.String({ minLength: 8, maxLength: 2048, description: 'http(s) URL; loopback, link-local and private addresses are refused' }),
  secret: Type.Optional(Type.String({ minLength: 16, maxLength: 256, description: 'Signing secret; generated (and returned once) when omitted' }))
}, { additionalProperties: false })

export const WebhookView = Type.Object({
  configured: Type.Boolean(),
  url: Nullable(Type.String()),
  updatedAt: Nullable(Timestamp),
  secret: Type.Optional(Type.String({ description: 'Only in the answer that generated it' }))
}, { additionalProperties: false })
