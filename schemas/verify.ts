import { Nullable, SAFE_TEXT } from './common.ts'
import { Type } from 'typebox'
import { MAX_KEY_LENGTH } from './keys.ts'

export const VerifyBody = Type.Object({
  key: Type.String({ minLength: 1, maxLength: MAX_KEY_LENGTH + 64, description: 'The issued key presented by your client' }),
  scopes: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 100 }), { maxItems: 50, description: 'Scopes the call needs; all must be on the key' })),
  cost: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'Units charged to the monthly usage when valid (default 1)' })),
  client: Type.Optional(Type.String({
    minLength: 1,
    maxLength: 200,
    pattern: SAFE_TEXT,
    description: 'Your end user (their IP address or your id for them): failed calls then count per end user, so one end user\'s bad keys never limit another\'s. An IPv6 address counts by its /64'
  }))
}, { additionalProperties: false })

const Code = Type.Union([
  Type.Literal('VALID'), Type.Literal('MALFORMED'), Type.Literal('NOT_FOUND'), Type.Literal('DISABLED'), Type.Literal('REVOKED'),
  Type.Literal('EXPIRED'), Type.Literal('INSUFFICIENT_SCOPES'), Type.Literal('RATE_LIMITED'), Type.Literal('USAGE_EXCEEDED')
])

export const VerifyResult = Type.Object({
  valid: Type.Boolean(),
  code: Code,
  keyId: Type.Optional(Type.String()),
  name: Type.Optional(Type.String()),
  environment: Type.Optional(Type.String()),
  scopes: Type.Optional(Type.Array(Type.String())),
  metadata: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  expiresAt: Type.Optional(Nullable(Type.String())),
  usage: Type.Optional(Type.Object({
    used: Type.Integer({ description: 'Units used this month, this call included' }),
    limit: Nullable(Type.Integer()),
    remaining: Nullable(Type.Integer()),
    resetAt: Type.String({ description: 'Start of the next UTC month' })
  }, { additionalProperties: false })),
  ratelimit: Type.Optional(Type.Object({
    limit: Type.Integer(),
    remaining: Type.Integer(),
    resetAt: Type.String({ description: 'When the bucket is full again' })
  }, { additionalProperties: false }))
}, { additionalProperties: false })
