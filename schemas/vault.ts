import { Type } from 'typebox'
import { Timestamp, Nullable } from './common.ts'

export const PassphraseBody = Type.Object({
  passphrase: Type.String({ minLength: 12, maxLength: 1024, description: 'At least 12 characters; never stored' }),
  currentPassphrase: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'Required to change an existing passphrase' }))
}, { additionalProperties: false })

export const VaultStatus = Type.Object({
  passphraseSet: Type.Boolean(),
  updatedAt: Nullable(Timestamp)
}, { additionalProperties: false })

export const PassphraseResult = Type.Object({
  result: Type.Union([Type.Literal('created'), Type.Literal('changed')])
}, { additionalProperties: false })
