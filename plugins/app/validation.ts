import type { FastifySchemaCompiler } from 'fastify'
import { Ajv, type Options } from 'ajv'
import addFormats from 'ajv-formats'

const common: Options = { allErrors: false, strict: false, useDefaults: true, removeAdditional: false }

// Bodies are JSON: a wrong type or an unknown field is rejected, never repaired. A body that is one
// of several shapes names its branch (`discriminator`). `verbose` puts the failing object and its
// schema on the error (built only when validation fails): the message names the branch's title, and
// a missing field caused by a misnamed one is reported as the unknown field.
const bodyAjv = addFormats.default(new Ajv({ ...common, coerceTypes: false, discriminator: true, verbose: true }))
// Query strings, path parameters and headers arrive as text and need coercion.
const textAjv = addFormats.default(new Ajv({ ...common, coerceTypes: 'array' }))

export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) => {
  const ajv = httpPart === 'body' ? bodyAjv : textAjv
  return ajv.compile(schema as object)
}
