import { Type } from 'typebox'
import { Timestamp, Nullable } from './common.ts'

export const UsageQuery = Type.Object({
  from: Type.Optional(Type.String({ format: 'date-time', description: 'Default: `to` minus 24 hours (hour), 30 days (day) or 12 months (month)' })),
  to: Type.Optional(Type.String({ format: 'date-time', description: 'Default: now' })),
  granularity: Type.Optional(Type.Union([Type.Literal('hour'), Type.Literal('day'), Type.Literal('month')], { default: 'hour' }))
}, { additionalProperties: false })

export const UsageSeries = Type.Object({
  keyId: Type.String(),
  granularity: Type.String(),
  from: Timestamp,
  to: Timestamp,
  points: Type.Array(Type.Object({
    start: Timestamp,
    units: Type.Integer(),
    requests: Type.Integer()
  }, { additionalProperties: false })),
  total: Type.Object({ units: Type.Integer(), requests: Type.Integer() }, { additionalProperties: false })
}, { additionalProperties: false })

export const RecordUsageBody = Type.Object({
  count: Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Calls made with the key' }),
  cost: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000_000, description: 'Units charged (default: count)' }))
}, { additionalProperties: false })

export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 200, pattern: '^[\\x21-\\x7e]+$', description: 'Retries with the same key count once' }))
})

export const RecordedUsage = Type.Object({
  keyId: Type.String(),
  duplicate: Type.Boolean({ description: 'True when this Idempotency-Key was seen before and nothing was added' }),
  month: Type.Object({
    units: Type.Integer(),
    requests: Type.Integer(),
    limit: Nullable(Type.Integer()),
    remaining: Nullable(Type.Integer())
  }, { additionalProperties: false })
}, { additionalProperties: false })

const Row = Type.Object({
  units: Type.Integer(),
  requests: Type.Integer()
}, { additionalProperties: false })

export const UsageSummary = Type.Object({
  month: Timestamp,
  total: Row,
  byKey: Type.Array(Type.Object({
    keyId: Type.String(),
    name: Type.String(),
    service: Nullable(Type.String()),
    units: Type.Integer(),
    requests: Type.Integer(),
    monthlyLimit: Nullable(Type.Integer())
  }, { additionalProperties: false })),
  byService: Type.Record(Type.String(), Row),
  topKeys: Type.Array(Type.Object({ keyId: Type.String(), name: Type.String(), units: Type.Integer() }, { additionalProperties: false }))
}, { additionalProperties: false })
