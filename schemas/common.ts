import { Type, type Static, type TSchema } from 'typebox'

/** Text without control characters (no NUL, newlines or bidi overrides in names and labels). */
export const SAFE_TEXT = '^[^\\u0000-\\u001f\\u007f\\u202a-\\u202e\\u2066-\\u2069]*$'

// No tight bound: an id of the wrong form is a 404 (the router already caps path parameters at 200).
export const Id = Type.String({ minLength: 1, maxLength: 200, description: 'Opaque id' })
export const IdParams = Type.Object({ id: Id }, { additionalProperties: false })
export const Timestamp = Type.String({ format: 'date-time', description: 'ISO 8601, UTC' })
export const NoContent = Type.Null({ description: 'No content' })
/** The query string of a route that takes none: any name in it is refused, as routes with a query schema refuse unknown names. */
export const NoQuery = Type.Object({}, { additionalProperties: false })

/**
 * A value or null. Scalars become `type: [t, 'null']`, which fast-json-stringify serialises
 * directly; an `anyOf` would make it try each branch with Ajv on every response (measured at
 * tens of microseconds per answer on the verify path).
 */
export function Nullable<T extends TSchema> (schema: T) {
  const type = (schema as { type?: unknown }).type
  if (typeof type === 'string' && type !== 'object' && type !== 'array') {
    return Type.Unsafe<Static<T> | null>({ ...schema, type: [type, 'null'] })
  }
  return Type.Union([schema, Type.Null()])
}
