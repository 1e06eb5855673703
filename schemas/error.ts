import { Type, type Static } from 'typebox'

/** The one error body every failure answers with. */
export const ErrorBody = Type.Object({
  statusCode: Type.Integer({ minimum: 400, maximum: 599 }),
  code: Type.String({ description: 'Stable machine-readable code, e.g. VALIDATION_FAILED' }),
  error: Type.String({ description: 'HTTP reason phrase' }),
  message: Type.String({ description: 'What went wrong, for people' }),
  requestId: Type.String({ description: 'Quote this when reporting a problem' })
}, { $id: 'ErrorBody', additionalProperties: false })

export type ErrorBodyType = Static<typeof ErrorBody>

/** A reference to the shared error body, for response schemas. */
export const ErrorRef = Type.Unsafe<ErrorBodyType>(Type.Ref('ErrorBody'))

/**
 * Response entries for the errors a route can give, plus `5xx`: any route may answer 503 when
 * the store is busy (`STORE_BUSY`) or the process is under pressure, in the same error shape.
 */
export function errorResponses (...codes: number[]) {
  return { ...Object.fromEntries(codes.map((c) => [c, ErrorRef])), '5xx': ErrorRef } as Record<number, typeof ErrorRef>
}
