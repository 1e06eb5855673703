import assert from 'node:assert/strict'
import type { App } from '../../app.ts'

/** The keys of the one error shape, sorted. */
export const ERROR_KEYS = ['code', 'error', 'message', 'requestId', 'statusCode']

/** The part of JSON Schema that Keyward's TypeBox schemas use in its OpenAPI document. */
export interface JsonSchema {
  type?: string | string[]
  enum?: unknown[]
  anyOf?: JsonSchema[]
  /** A body that is one of several shapes (the create-key body, discriminated on `kind`). */
  oneOf?: JsonSchema[]
  properties?: Record<string, JsonSchema>
  required?: string[]
  additionalProperties?: boolean | JsonSchema
  maxProperties?: number
  items?: JsonSchema
  minItems?: number
  maxItems?: number
  minLength?: number
  maxLength?: number
  pattern?: string
  format?: string
  minimum?: number
  maximum?: number
}

export interface Parameter {
  in: 'query' | 'path' | 'header'
  name: string
  schema: JsonSchema
}

export interface Operation {
  method: string
  /** OpenAPI form: `/api/keys/{id}`. */
  path: string
  body?: JsonSchema
  parameters: Parameter[]
}

interface OpenApiDocument {
  paths: Record<string, Record<string, {
    requestBody?: { content?: Record<string, { schema?: JsonSchema }> }
    parameters?: Parameter[]
  }>>
}

/** Every operation of the app's OpenAPI document (/docs/json), with its body schema and parameters. */
export async function openApiOperations (app: App): Promise<Operation[]> {
  const res = await app.inject({ method: 'GET', url: '/docs/json' })
  assert.equal(res.statusCode, 200, 'the OpenAPI document is served')
  const doc = res.json() as OpenApiDocument
  const out: Operation[] = []
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      out.push({
        method: method.toUpperCase(),
        path,
        body: op.requestBody?.content?.['application/json']?.schema,
        parameters: op.parameters ?? []
      })
    }
  }
  return out
}

/** Asserts that an answer is a 4xx in the one error shape, its statusCode matching the status line. */
export function assertErrorShape (res: { statusCode: number, body: string }, context: string) {
  let body: Record<string, unknown>
  try {
    body = JSON.parse(res.body)
  } catch {
    assert.fail(`${context}: ${res.statusCode} with a body that is not JSON: ${res.body.slice(0, 200)}`)
  }
  assert.deepEqual(Object.keys(body).sort(), ERROR_KEYS, `${context}: not the error shape: ${res.body.slice(0, 200)}`)
  assert.equal(body.statusCode, res.statusCode, `${context}: statusCode in the body differs from the status`)
  assert.ok(typeof body.requestId === 'string' && body.requestId.length > 0, `${context}: no requestId`)
}
