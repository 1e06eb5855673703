import { STATUS_CODES } from 'node:http'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { ErrorBody, type ErrorBodyType } from '../../schemas/error.ts'
import { API_SECURITY_HEADERS, wantsSecurityHeaders } from './security-headers.ts'

/** A failure the client can act on: a status, a stable code and a message safe to show. */
export class AppError extends Error {
  constructor (readonly statusCode: number, readonly code: string, message: string, readonly headers?: Record<string, string>) {
    super(message)
    this.name = 'AppError'
  }
}

export const notFound = (what = 'Resource') => new AppError(404, 'NOT_FOUND', `${what} not found`)
export const unauthorized = (message = 'Authentication required') => new AppError(401, 'UNAUTHORIZED', message)
export const forbidden = (message = 'Not allowed') => new AppError(403, 'FORBIDDEN', message)

const CSRF_MESSAGE = 'The x-csrf-token header is missing or wrong; get one from GET /api/auth/console/csrf'

const FRAMEWORK_CODES: Record<string, { status: number, code: string, message?: string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'PAYLOAD_TOO_LARGE' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: 'BAD_REQUEST' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'VALIDATION_FAILED', message: 'body must be a JSON object, but it was empty' },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'MALFORMED_JSON', message: 'body is not valid JSON' },
  FST_ERR_BAD_URL: { status: 400, code: 'BAD_URL', message: 'the URL is malformed' },
  FST_ERR_ASYNC_CONSTRAINT: { status: 400, code: 'BAD_REQUEST' },
  FST_ERR_CTP_INVALID_TYPE: { status: 400, code: 'BAD_REQUEST' },
  FST_ERR_CTP_INVALID_HANDLER: { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  // @fastify/csrf-protection on the console session routes: no secret cookie, or no or a wrong token.
  FST_CSRF_MISSING_SECRET: { status: 403, code: 'CSRF_INVALID', message: CSRF_MESSAGE },
  FST_CSRF_INVALID_TOKEN: { status: 403, code: 'CSRF_INVALID', message: CSRF_MESSAGE }
}

const STATUS_DEFAULT_CODES: Record<number, string> = {
  400: 'BAD_REQUEST',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  406: 'NOT_ACCEPTABLE',
  408: 'REQUEST_TIMEOUT',
  409: 'CONFLICT',
  413: 'PAYLOAD_TOO_LARGE',
  414: 'URI_TOO_LONG',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  429: 'RATE_LIMITED',
  431: 'HEADERS_TOO_LARGE',
  503: 'SERVICE_UNAVAILABLE'
}

interface ValidationItem {
  instancePath?: string
  message?: string
  keyword?: string
  params?: Record<string, unknown>
  // Present for bodies (Ajv's verbose option): the object that failed and the schema holding the keyword.
  data?: unknown
  parentSchema?: { title?: unknown, properties?: Record<string, unknown>, patternProperties?: unknown, additionalProperties?: unknown }
}

/** ' for a held key' when the failed rule belongs to one titled branch of a body (a held or an issued key). */
function branchOf (item: ValidationItem): string {
  const title = item.parentSchema?.title
  if (typeof title !== 'string') return ''
  return ` for ${/^[aeiou]/i.test(title) ? 'an' : 'a'} ${title.toLowerCase()}`
}

/**
 * A field of `data` that its schema does not allow. Ajv checks `required` before
 * `additionalProperties`, so `{"email": …}` to a route that takes only `name` would otherwise be
 * reported as missing `name` rather than as carrying `email`.
 */
function unknownField (item: ValidationItem): string | undefined {
  const schema = item.parentSchema
  if (schema?.additionalProperties !== false || schema.patternProperties !== undefined || typeof item.data !== 'object' || item.data === null) return undefined
  return Object.keys(item.data).find((key) => !Object.hasOwn(schema.properties ?? {}, key))
}

function describeValidation (error: FastifyError): string {
  const first = (error.validation?.[0] ?? {}) as ValidationItem
  const where = `${error.validationContext ?? 'request'}${(first.instancePath ?? '').replace(/\//g, '.').replace(/^\./, '/')}`
  if (first.keyword === 'additionalProperties') return `${where} has an unknown field '${String(first.params?.additionalProperty)}'${branchOf(first)}`
  const unknown = first.keyword === 'required' ? unknownField(first) : undefined
  if (unknown !== undefined) return `${where} has an unknown field '${unknown.slice(0, 100)}'${branchOf(first)}`
  if (first.keyword === 'required') return `${where} is missing the required field '${String(first.params?.missingProperty)}'${branchOf(first)}`
  return `${where} ${first.message ?? 'is invalid'}`
}

export function errorBody (request: FastifyRequest, statusCode: number, code: string, message: string): ErrorBodyType {
  return { statusCode, code, error: STATUS_CODES[statusCode] ?? 'Error', message, requestId: String(request.id) }
}

/** Maps any thrown error to the one error body; 5xx answers never carry internal details. */
export function toErrorBody (error: FastifyError | AppError | Error, request: FastifyRequest): { body: ErrorBodyType, headers?: Record<string, string> } {
  if (error instanceof AppError) {
    return { body: errorBody(request, error.statusCode, error.code, error.message), headers: error.headers }
  }
  // Conflicts detected inside a store transaction.
  if (error.name === 'KeyRevokedError') return { body: errorBody(request, 409, 'KEY_REVOKED', 'The key is revoked; revoked keys cannot change') }
  if (error.name === 'StoreBusyError') return { body: errorBody(request, 503, 'STORE_BUSY', 'The store is busy; nothing was changed, retry shortly'), headers: { 'retry-after': '1' } }
  // A MongoDB primary stepping down (an election takes a few seconds) or an exhausted pool.
  if (error.name === 'StoreUnavailableError') return { body: errorBody(request, 503, 'STORE_UNAVAILABLE', 'The store is unavailable; retry shortly'), headers: { 'retry-after': '2' } }
  if (error.name === 'DuplicateError') return { body: errorBody(request, 409, 'CONFLICT', 'A concurrent change got there first; try again') }
  const fe = error as FastifyError
  if (fe.validation !== undefined) {
    return { body: errorBody(request, 400, 'VALIDATION_FAILED', describeValidation(fe)) }
  }
  const mapped = fe.code === undefined ? undefined : FRAMEWORK_CODES[fe.code]
  if (mapped !== undefined) {
    return { body: errorBody(request, mapped.status, mapped.code, mapped.message ?? fe.message) }
  }
  const status = fe.statusCode ?? 500
  if (status >= 400 && status < 500) {
    return { body: errorBody(request, status, STATUS_DEFAULT_CODES[status] ?? 'BAD_REQUEST', fe.message) }
  }
  if (status === 503) {
    return { body: errorBody(request, 503, 'SERVICE_UNAVAILABLE', 'The service is temporarily unavailable; retry shortly') }
  }
  return { body: errorBody(request, 500, 'INTERNAL_ERROR', 'An unexpected error occurred') }
}

export function sendError (error: FastifyError | Error, request: FastifyRequest, reply: FastifyReply) {
  const { body, headers } = toErrorBody(error, request)
  if (body.code === 'STORE_BUSY' || body.code === 'STORE_UNAVAILABLE') {
    request.log.warn({ code: body.code, statusCode: body.statusCode }, body.message)
  } else if (body.statusCode >= 500) {
    request.log.error({ err: error }, 'request failed')
  } else {
    request.log.info({ code: body.code, statusCode: body.statusCode }, body.message)
  }
  // An error may be raised before the route's own hook set them (authentication, under-pressure, a 404).
  if (wantsSecurityHeaders(request)) reply.headers(API_SECURITY_HEADERS)
  if (headers !== undefined) reply.headers(headers)
  return reply.code(body.statusCode).type('application/json; charset=utf-8').send(body)
}

/** Fastify's frameworkErrors option: URL and constraint errors raised before routing. */
export function frameworkErrorHandler (error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  sendError(error, request, reply)
}

/** Unknown routes answer 404 in the one error shape (set by the rate-limit plugin, which counts them). */
export function notFoundHandler (request: FastifyRequest, reply: FastifyReply) {
  reply.headers(API_SECURITY_HEADERS)
  reply.code(404).send(errorBody(request, 404, 'NOT_FOUND', `Route ${request.method} ${request.url.split('?')[0]?.slice(0, 200)} not found`))
}

async function errorsPlugin (fastify: FastifyInstance) {
  fastify.addSchema(ErrorBody)
  fastify.setErrorHandler((error: FastifyError, request, reply) => sendError(error, request, reply))
}

export default fp(errorsPlugin, { name: 'errors' })
