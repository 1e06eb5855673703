import { Type, type Static } from 'typebox'
import { SAFE_TEXT, Timestamp, Nullable } from './common.ts'

// The issued key's format lives here so the request bounds and plugins/app/keys/format.ts share one definition.
/** A custom prefix as the client sends it (the service may add a trailing underscore). */
export const PREFIX_PATTERN = '^[A-Za-z][A-Za-z0-9_]{0,15}$'
/** Base62 characters of an issued key's random body and of its checksum. */
export const KEY_BODY_LENGTH = 43
export const KEY_CHECKSUM_LENGTH = 6
/** The longest issued key: a stored prefix (at most 16 characters and an underscore), the body and the checksum. */
export const MAX_KEY_LENGTH = 17 + KEY_BODY_LENGTH + KEY_CHECKSUM_LENGTH

const KeyKind = Type.Union([Type.Literal('held'), Type.Literal('issued')])

export const RateLimitSchema = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 1_000_000_000, description: 'Requests allowed per window, sustained' }),
  windowMs: Type.Integer({ minimum: 1000, maximum: 86_400_000, description: 'Window length in milliseconds' }),
  burst: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000_000, description: 'Bucket capacity (defaults to limit)' }))
}, { additionalProperties: false })

/** A key as the API shows it: never the hash, never ciphertext. */
export const KeyView = Type.Object({
  id: Type.String(),
  kind: KeyKind,
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
  recoverable: Type.Boolean({ description: 'An encrypted copy is kept and can be revealed with the passphrase' }),
  expiresAt: Nullable(Timestamp),
  rotationIntervalDays: Nullable(Type.Integer()),
  rotationDueAt: Nullable(Timestamp),
  monthlyLimit: Nullable(Type.Integer()),
  rateLimit: Nullable(RateLimitSchema),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  lastUsedAt: Nullable(Timestamp),
  revokedAt: Nullable(Timestamp)
}, { additionalProperties: false })

export type KeyViewType = Static<typeof KeyView>

const Text = (maxLength: number, description?: string) => Type.String({ minLength: 1, maxLength, pattern: SAFE_TEXT, description })
const Tag = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9:_./-]*$' })
const Scope = Type.String({ minLength: 1, maxLength: 100, pattern: '^([*]|[A-Za-z0-9][A-Za-z0-9:_./*-]*)$', description: 'A permission name; * grants every scope' })
const EnvironmentSchema = Type.Union([Type.Literal('development'), Type.Literal('staging'), Type.Literal('production')])
const Passphrase = Type.String({ minLength: 1, maxLength: 1024 })

const editable = {
  name: Text(100),
  service: Nullable(Text(100, 'The provider or system the key belongs to')),
  description: Nullable(Text(1000)),
  environment: EnvironmentSchema,
  tags: Type.Array(Tag, { maxItems: 20 }),
  scopes: Type.Array(Scope, { maxItems: 50 }),
  metadata: Type.Record(Type.String({ maxLength: 100 }), Type.Unknown(), { maxProperties: 50, description: 'Free JSON, at most 4 KiB' }),
  expiresAt: Nullable(Type.String({ format: 'date-time', description: 'Must be in the future' })),
  rotationIntervalDays: Nullable(Type.Integer({ minimum: 1, maximum: 3650 })),
  monthlyLimit: Nullable(Type.Integer({ minimum: 1, maximum: 1_000_000_000_000 })),
  rateLimit: Nullable(RateLimitSchema)
}

/** Every editable field, optional: what an update may send, and what a create may send besides its kind's fields. */
const optionalEditable = Type.Partial(Type.Object(editable)).properties
const Secret = (description: string) => Type.String({ minLength: 1, maxLength: 8192, description })

const HeldKeyBody = Type.Object({
  kind: Type.Literal('held'),
  ...optionalEditable,
  name: editable.name,
  secret: Secret('The secret to store'),
  passphrase: Passphrase
}, { additionalProperties: false, title: 'Held key' })

const IssuedKeyBody = Type.Object({
  kind: Type.Literal('issued'),
  ...optionalEditable,
  name: editable.name,
  prefix: Type.Optional(Type.String({ minLength: 1, maxLength: 16, pattern: PREFIX_PATTERN, description: 'The key prefix (default kw_)' })),
  recoverable: Type.Optional(Type.Boolean({ description: 'Keep an encrypted copy (needs the passphrase)' })),
  passphrase: Type.Optional(Passphrase)
}, {
  additionalProperties: false,
  title: 'Issued key',
  // The title names the rule in the error: "missing the required field 'passphrase' for a recoverable key".
  if: { properties: { recoverable: { const: true } }, required: ['recoverable'] },
  then: { required: ['passphrase'], properties: { passphrase: Passphrase }, title: 'Recoverable key' }
})

/**
 * A held or an issued key, chosen by `kind`. `oneOf` with a discriminator (which TypeBox's anyOf
 * union does not write) lets Ajv check only the named branch, so errors name that branch's field;
 * `kind` is also required at the top so a body without it says so.
 */
export const CreateKeyBody = Type.Unsafe<Static<typeof HeldKeyBody> | Static<typeof IssuedKeyBody>>({
  type: 'object',
  required: ['kind'],
  properties: { kind: KeyKind },
  oneOf: [HeldKeyBody, IssuedKeyBody],
  discriminator: { propertyName: 'kind' }
})

export const UpdateKeyBody = Type.Object({
  ...optionalEditable,
  status: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('disabled')]))
}, { additionalProperties: false, minProperties: 1 })

export const CreatedKey = Type.Object({
  key: KeyView,
  secret: Type.Optional(Type.String({ description: 'Issued keys only, shown this once' }))
}, { additionalProperties: false })

export const KeyListQuery = Type.Object({
  status: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('disabled'), Type.Literal('expired'), Type.Literal('revoked')])),
  kind: Type.Optional(KeyKind),
  service: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
  environment: Type.Optional(EnvironmentSchema),
  tag: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  q: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'Search over name, service, description and tags' })),
  sort: Type.Optional(Type.Union(['createdAt', '-createdAt', 'name', '-name', 'lastUsedAt', '-lastUsedAt', 'expiresAt', '-expiresAt'].map((v) => Type.Literal(v)), { default: '-createdAt' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512 }))
}, { additionalProperties: false })

export const KeyList = Type.Object({
  items: Type.Array(KeyView),
  nextCursor: Nullable(Type.String())
}, { additionalProperties: false })

export const RevealBody = Type.Object({
  passphrase: Passphrase,
  version: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 }))
}, { additionalProperties: false })

export const Revealed = Type.Object({
  id: Type.String(),
  version: Type.Integer(),
  secret: Type.String()
}, { additionalProperties: false })

export const RotateBody = Type.Object({
  secret: Type.Optional(Secret('Held keys: the new secret from the provider')),
  passphrase: Type.Optional(Passphrase),
  gracePeriodSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 2_592_000, description: 'Issued keys: how long the old secret still verifies (default 0)' }))
}, { additionalProperties: false })

export const KeyVersion = Type.Object({
  version: Type.Integer(),
  current: Type.Boolean(),
  start: Type.String(),
  recoverable: Type.Boolean(),
  createdAt: Timestamp,
  retiredAt: Nullable(Timestamp),
  graceEndsAt: Nullable(Timestamp)
}, { additionalProperties: false })

export const KeyVersionList = Type.Object({ items: Type.Array(KeyVersion), nextCursor: Type.Null({ description: 'Versions are few (at most 11): one page' }) }, { additionalProperties: false })

export const BulkBody = Type.Object({
  action: Type.Union([Type.Literal('revoke'), Type.Literal('disable'), Type.Literal('enable'), Type.Literal('addTags'), Type.Literal('removeTags')]),
  ids: Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { minItems: 1, maxItems: 100 }),
  tags: Type.Optional(Type.Array(Tag, { minItems: 1, maxItems: 20 }))
}, { additionalProperties: false })

export const BulkResults = Type.Object({
  results: Type.Array(Type.Object({
    id: Type.String(),
    ok: Type.Boolean(),
    status: Type.Optional(Type.String()),
    error: Type.Optional(Type.String())
  }, { additionalProperties: false }))
}, { additionalProperties: false })

const Counts = Type.Record(Type.String(), Type.Integer())
export const KeyStatsSchema = Type.Object({
  total: Type.Integer(),
  byStatus: Counts,
  byKind: Counts,
  byService: Counts,
  byEnvironment: Counts,
  expiringSoon: Type.Integer({ description: 'Active keys expiring within 7 days' }),
  rotationDue: Type.Integer({ description: 'Active keys whose rotation is due' }),
  generatedAt: Timestamp
}, { additionalProperties: false })
