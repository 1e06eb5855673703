import { Type } from 'typebox'

/** Text without control characters (no NUL, newlines or bidi overrides in names and labels). */
export const SAFE_TEXT = '^[^\\u0000-\\u001f\\u007f\\u202a-\\u202e\\u2066-\\u2069]*$'

export const Id = Type.String({ minLength: 1, maxLength: 64, description: 'Opaque id' })
export const IdParams = Type.Object({ id: Id }, { additionalProperties: false })
export const Timestamp = Type.String({ format: 'date-time', description: 'ISO 8601, UTC' })
export const NoContent = Type.Null({ description: 'No content' })
