import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { principalOf, requestContext } from '../../../plugins/app/auth/index.ts'
import { publicUser } from '../../../plugins/app/auth/service.ts'
import { sessionView } from '../../../plugins/app/auth/view.ts'
import {
  AccountExport, ChangePasswordBody, DeleteMeBody, LoginBody, LogoutAllResult, RefreshBody, RegisterBody, SessionList,
  TokenPair, UpdateMeBody, User
} from '../../../schemas/auth.ts'
import { IdParams, NoContent } from '../../../schemas/common.ts'
import { errorResponses } from '../../../schemas/error.ts'

const auth: FastifyPluginAsyncTypebox = async (fastify) => {
  // The auth tier: one count per client IP shared by the routes that take credentials.
  const authTier = { rateLimit: fastify.tier('auth') }
  const secured = { security: [{ bearerAuth: [] }] }
  // Authentication runs first, so an anonymous caller learns nothing about a route's body schema.
  const protectedRoute = { onRequest: fastify.authenticate }

  fastify.post('/register', {
    config: authTier,
    schema: {
      operationId: 'register',
      summary: 'Create an account',
      description: 'Returns the user and a token pair. Emails are trimmed, lower-cased and unique.',
      tags: ['auth'],
      security: [],
      body: RegisterBody,
      response: { 201: TokenPair, ...errorResponses(400, 409, 413, 415, 429) }
    }
  }, async (request, reply) => {
    const tokens = await fastify.auth.register(request.body, requestContext(request))
    return reply.code(201).header('cache-control', 'no-store').send(tokens)
  })

  fastify.post('/login', {
    config: authTier,
    schema: {
      operationId: 'login',
      summary: 'Sign in',
      description: 'A wrong email and a wrong password answer the same 401 INVALID_CREDENTIALS, in about the same time.',
      tags: ['auth'],
      security: [],
      body: LoginBody,
      response: { 200: TokenPair, ...errorResponses(400, 401, 413, 415, 429) }
    }
  }, async (request, reply) => reply.header('cache-control', 'no-store').send(await fastify.auth.login(request.body, requestContext(request))))

  fastify.post('/refresh', {
    config: authTier,
    schema: {
      operationId: 'refreshToken',
      summary: 'Exchange a refresh token for a new pair',
      description: 'Each refresh token works once. Presenting a used one revokes its whole session (401 REFRESH_TOKEN_REUSED).',
      tags: ['auth'],
      security: [],
      body: RefreshBody,
      response: { 200: TokenPair, ...errorResponses(400, 401, 413, 415, 429) }
    }
  }, async (request, reply) => reply.header('cache-control', 'no-store').send(await fastify.auth.refresh(request.body.refreshToken, requestContext(request))))

  fastify.post('/logout', {
    ...protectedRoute,
    schema: {
      operationId: 'logout',
      summary: 'End the current session',
      tags: ['auth'],
      ...secured,
      response: { 204: NoContent, ...errorResponses(401) }
    }
  }, async (request, reply) => {
    await fastify.auth.logout(principalOf(request), requestContext(request))
    return reply.code(204).send(null)
  })

  fastify.post('/logout-all', {
    ...protectedRoute,
    schema: {
      operationId: 'logoutAll',
      summary: 'End every session of the account, this one included',
      tags: ['auth'],
      ...secured,
      response: { 200: LogoutAllResult, ...errorResponses(401) }
    }
  }, async (request) => ({ revoked: await fastify.auth.logoutAll(principalOf(request), requestContext(request)) }))

  fastify.get('/me', {
    ...protectedRoute,
    schema: {
      operationId: 'getMe',
      summary: 'The signed-in user',
      tags: ['auth'],
      ...secured,
      response: { 200: User, ...errorResponses(401, 404) }
    }
  }, async (request) => publicUser(await fastify.auth.me(principalOf(request))))

  fastify.patch('/me', {
    ...protectedRoute,
    schema: {
      operationId: 'updateMe',
      summary: 'Change the display name',
      description: 'Only the name can change here; role, email and password have their own paths.',
      tags: ['auth'],
      ...secured,
      body: UpdateMeBody,
      response: { 200: User, ...errorResponses(400, 401, 404, 413, 415) }
    }
  }, async (request) => publicUser(await fastify.auth.updateMe(principalOf(request), request.body)))

  fastify.delete('/me', {
    ...protectedRoute,
    // It checks the password: a stolen access token must not make it a guessing oracle at the general tier's rate.
    config: authTier,
    schema: {
      operationId: 'deleteMe',
      summary: 'Delete the account and everything it owns',
      description: 'Needs the password. Keys, versions, usage and sessions are deleted; issued keys stop verifying at once.',
      tags: ['auth'],
      ...secured,
      body: DeleteMeBody,
      response: { 204: NoContent, ...errorResponses(400, 401, 403, 413, 415, 429) }
    }
  }, async (request, reply) => {
    await fastify.auth.deleteAccount(principalOf(request), request.body.password, requestContext(request))
    return reply.code(204).send(null)
  })

  fastify.get('/me/export', {
    onRequest: fastify.authenticate,
    config: { rateLimit: fastify.tier('heavy') },
    schema: {
      operationId: 'exportAccount',
      summary: 'Everything the account owns, as JSON',
      description: 'Metadata only: never secrets, hashes or ciphertext.',
      tags: ['auth'],
      ...secured,
      response: { 200: AccountExport, ...errorResponses(401, 404, 429) }
    }
  }, async (request) => fastify.auth.exportAccount(principalOf(request)))

  fastify.post('/change-password', {
    onRequest: fastify.authenticate,
    config: authTier,
    schema: {
      operationId: 'changePassword',
      summary: 'Change the password',
      description: 'Checks the current password (403 WRONG_PASSWORD) and ends every other session.',
      tags: ['auth'],
      ...secured,
      body: ChangePasswordBody,
      response: { 204: NoContent, ...errorResponses(400, 401, 403, 413, 415, 429) }
    }
  }, async (request, reply) => {
    await fastify.auth.changePassword(principalOf(request), request.body, requestContext(request))
    return reply.code(204).send(null)
  })

  fastify.get('/sessions', {
    ...protectedRoute,
    schema: {
      operationId: 'listSessions',
      summary: 'The account\'s sessions, newest first',
      tags: ['auth'],
      ...secured,
      response: { 200: SessionList, ...errorResponses(401) }
    }
  }, async (request) => {
    const principal = principalOf(request)
    return { items: (await fastify.auth.sessions(principal)).map((s) => sessionView(s, principal.sessionId)), nextCursor: null }
  })

  fastify.delete('/sessions/:id', {
    ...protectedRoute,
    schema: {
      operationId: 'endSession',
      summary: 'End one session of the account',
      tags: ['auth'],
      ...secured,
      params: IdParams,
      response: { 204: NoContent, ...errorResponses(400, 401, 404) }
    }
  }, async (request, reply) => {
    await fastify.auth.revokeOwnSession(principalOf(request), request.params.id, requestContext(request))
    return reply.code(204).send(null)
  })
}

export default auth
