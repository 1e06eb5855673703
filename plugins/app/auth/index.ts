import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { AppError, unauthorized } from '../errors.ts'
import { AuthService, type AccessClaims, type Principal, type RequestContext } from './service.ts'
import type { Role } from '../store/types/index.ts'

declare module 'fastify' {
  interface FastifyInstance {
    auth: AuthService
    /** preHandler for protected routes: resolves the bearer token to `request.principal`. */
    authenticate (request: FastifyRequest): Promise<void>
    /** preHandler that admits only callers with the role (use after authenticate). */
    requireRole (role: Role): (request: FastifyRequest) => Promise<void>
  }
  interface FastifyRequest {
    principal: Principal | null
  }
}

export function bearerToken (request: FastifyRequest): string | null {
  const header = request.headers.authorization
  if (header === undefined || header.length < 8 || header.length > 8192) return null
  const space = header.indexOf(' ')
  if (space === -1 || header.slice(0, space).toLowerCase() !== 'bearer') return null
  return header.slice(space + 1).trim() || null
}

export function requestContext (request: FastifyRequest): RequestContext {
  const ua = request.headers['user-agent']
  return { ip: request.ip ?? null, userAgent: typeof ua === 'string' ? ua : null }
}

/** The authenticated caller; only for handlers behind `authenticate`. */
export function principalOf (request: FastifyRequest): Principal {
  if (request.principal === null) throw unauthorized()
  return request.principal
}

export default fp(async function authPlugin (fastify: FastifyInstance) {
  const { auth } = fastify.config
  const service = new AuthService({
    store: fastify.store,
    cache: fastify.cache,
    clock: fastify.clock,
    audit: fastify.audit,
    signAccess: (claims: AccessClaims, expiresIn: number) => fastify.jwt.sign(claims, { expiresIn }),
    verifyAccess: (token: string) => fastify.jwt.verify<AccessClaims>(token),
    accessTtlSeconds: auth.accessTtlSeconds,
    refreshTtlSeconds: auth.refreshTtlSeconds,
    adminEmails: auth.adminEmails,
    passwordParams: auth.passwordParams
  })
  fastify.decorate('auth', service)
  fastify.decorateRequest('principal', null)

  fastify.decorate('authenticate', async function authenticate (request: FastifyRequest) {
    const token = bearerToken(request)
    if (token === null) throw unauthorized('A bearer access token is required')
    request.principal = await service.authenticate(token, request.raw.socket ?? undefined)
  })

  fastify.decorate('requireRole', function requireRole (role: Role) {
    return async function roleGuard (request: FastifyRequest) {
      if (request.principal?.role !== role) throw new AppError(403, 'FORBIDDEN', `This needs the ${role} role`)
    }
  })
}, { name: 'auth', dependencies: ['config', 'store', 'cache', 'clock', 'audit', 'jwt'] })
