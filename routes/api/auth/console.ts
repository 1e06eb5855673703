import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { requestContext } from '../../../plugins/app/auth/index.ts'
import { ConsoleSessions, REFRESH_COOKIE } from '../../../plugins/app/auth/console.ts'
import consoleCookies, { CSRF_COOKIE, CSRF_HEADER } from '../../../plugins/external/console-cookies.ts'
import { ConsoleLogoutBody, ConsoleRefreshBody, ConsoleSession, CsrfToken, LoginBody, RegisterBody } from '../../../schemas/auth.ts'
import { NoContent } from '../../../schemas/common.ts'
import { errorResponses } from '../../../schemas/error.ts'

const CSRF_NOTE = `Needs the \`${CSRF_HEADER}\` header from GET /csrf (403 CSRF_INVALID without it, and nothing changes).`
const COOKIE_NOTE = `The refresh token travels in the \`${REFRESH_COOKIE}\` cookie (HttpOnly, SameSite=Strict, scoped to this path), never in the body.`

function optionalBody (request: FastifyRequest, _reply: FastifyReply, done: () => void) {
  request.body ??= {}
  done()
}

/**
 * The web console's sessions (issue 19). Cookie parsing and CSRF checks are registered in this
 * encapsulated context only, so no other route (verify above all) pays for them.
 */
const consoleSession: FastifyPluginAsyncTypebox = async (fastify) => {
  await fastify.register(consoleCookies, { path: fastify.prefix })
  const sessions = new ConsoleSessions(fastify.auth, fastify.clock, fastify.prefix)
  const authTier = { rateLimit: fastify.tier('auth') }
  const tags = ['console']
  // The CSRF check runs before validation and the handler, so a forged request changes nothing;
  // after the body is read, so an oversized body is the same 413 as on every route.
  const guarded = { preValidation: fastify.csrfProtection }
  // Refresh and logout need no body: a request without one reads as `{}` (an empty JSON body is still 400).
  const bodyOptional = { preValidation: [fastify.csrfProtection, optionalBody] }

  fastify.get('/csrf', {
    schema: {
      operationId: 'consoleCsrf',
      summary: 'A CSRF token for the console session routes',
      description: `Sets the \`${CSRF_COOKIE}\` secret cookie (HttpOnly, SameSite=Strict, signed) when absent. No CORS: only a page of this origin can read the token.`,
      tags,
      security: [],
      response: { 200: CsrfToken, ...errorResponses(429) }
    }
  }, async (request, reply) => {
    const csrfToken = reply.generateCsrf({ secure: request.protocol === 'https' })
    return reply.header('cache-control', 'no-store').send({ csrfToken })
  })

  fastify.post('/register', {
    ...guarded,
    config: authTier,
    schema: {
      operationId: 'consoleRegister',
      summary: 'Create an account and sign the console in',
      description: `As POST /api/auth/register. ${COOKIE_NOTE} ${CSRF_NOTE}`,
      tags,
      security: [],
      body: RegisterBody,
      response: { 201: ConsoleSession, ...errorResponses(400, 403, 409, 413, 415, 429) }
    }
  }, async (request, reply) => {
    const body = sessions.start(request, reply, await fastify.auth.register(request.body, requestContext(request)))
    return reply.code(201).send(body)
  })

  fastify.post('/login', {
    ...guarded,
    config: authTier,
    schema: {
      operationId: 'consoleLogin',
      summary: 'Sign the console in',
      description: `As POST /api/auth/login (401 INVALID_CREDENTIALS). ${COOKIE_NOTE} ${CSRF_NOTE}`,
      tags,
      security: [],
      body: LoginBody,
      response: { 200: ConsoleSession, ...errorResponses(400, 401, 403, 413, 415, 429) }
    }
  }, async (request, reply) => sessions.start(request, reply, await fastify.auth.login(request.body, requestContext(request))))

  // The general tier, not the auth tier: the page refreshes on every load, and a refresh token
  // is unguessable, so this route is no way to guess a password.
  fastify.post('/refresh', {
    ...bodyOptional,
    schema: {
      operationId: 'consoleRefresh',
      summary: 'A new access token for the console, from its refresh cookie',
      description: `Rotates the cookie (single use). A reused cookie revokes its session (401 REFRESH_TOKEN_REUSED); no cookie is 401 NOT_SIGNED_IN, an invalid or expired one 401 INVALID_REFRESH_TOKEN; every 401 clears the cookie. ${CSRF_NOTE}`,
      tags,
      security: [],
      body: ConsoleRefreshBody,
      response: { 200: ConsoleSession, ...errorResponses(400, 401, 403, 413, 415, 429) }
    }
  }, async (request, reply) => sessions.refresh(request, reply))

  fastify.post('/logout', {
    ...bodyOptional,
    schema: {
      operationId: 'consoleLogout',
      summary: 'Sign the console out',
      description: `Ends the refresh cookie's session (without a cookie, the bearer token's), or every session of the account with \`everywhere\`, and clears the cookie. Idempotent: 204 with nothing to end. ${CSRF_NOTE}`,
      tags,
      security: [],
      body: ConsoleLogoutBody,
      response: { 204: NoContent, ...errorResponses(400, 403, 413, 415) }
    }
  }, async (request, reply) => {
    await sessions.logout(request, reply, request.body.everywhere === true)
    return reply.code(204).send(null)
  })
}

export default consoleSession
