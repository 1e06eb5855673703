import { Type, type Static } from 'typebox'
import { Timestamp } from './common.ts'

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()])

export const RateLimitSchema = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 1_000_000_000, description: 'Requests allowed per window, sustained' }),
  windowMs: Type.Integer({ minimum: 1000, maximum: 86_400_000, description: 'Window length in milliseconds' }),
  burst: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000_000, description: 'Bucket capacity (defaults to limit)' }))
}, { additionalProperties: false })

/** A key as the API shows it: never the hash, never ciphertext. */
export const KeyView = Type.Object({
  id: Type.String(),
  kind: Type.Union([Type.Literal('held'), Type.Literal('issued')]),
  name: Type.String(),
  service: Nullable(Type.String()),
  description: Nullable(Type.String()),
  environment: Type.Union([Type.Literal('development'), Type.Literal('staging'), Type.Literal('production')]),
  tags: Type.Array(Type.String()),
  scopes: Type.Array(Type.String()),
  metadata: Type.Record(Type.String(), Type.Unknown()),
  prefix: Type.String(),
  start: Type.String({ description: 'The first characters, for recognising the key' }),
  version: Type.Integer(),
  status: Type.Union([Type.Literal('active'), Type.Literal('disabled'), Type.Literal('expired'), Type.Literal('revoked')]),
  expiresAt: Nullable(Timestamp),
  rotationIntervalDays: Nullable(Type.Integer()),
  rotationDueAt: Nullable(Timestamp),
  monthlyLimit: Nullable(Type.Integer()),
  rateLimit: Nullable(RateLimitSchema),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  lastUsedAt: Nullable(Timestamp)
}, { additionalProperties: false })

export type KeyViewType = Static<typeof KeyView>
