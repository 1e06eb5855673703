import type { CookieSerializeOptions } from '@fastify/cookie'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Clock } from '../clock.ts'
import { AppError } from '../errors.ts'
import { bearerToken, requestContext } from './index.ts'
import type { AuthService, Principal, TokenPair } from './service.ts'

/**
 * The console's refresh cookie. Not `__Host-` prefixed: that prefix demands Path=/, and this
 * cookie is scoped to the console session routes so no other route ever receives it.
 */
export const REFRESH_COOKIE = 'keyward_refresh'

/** Longer than any refresh token Keyward issues ('rt_' and 43 characters): anything longer is not one. */
const MAX_REFRESH_COOKIE_LENGTH = 512

function attributes (request: FastifyRequest, path: string): CookieSerializeOptions {
  // Secure whenever the browser reached us over HTTPS (the proxy's word counts only with TRUST_PROXY).
  return { path, httpOnly: true, sameSite: 'strict', secure: request.protocol === 'https' }
}

/** The refresh token the console's cookie carries, or null. */
export function refreshCookieOf (request: FastifyRequest): string | null {
  const value = request.cookies?.[REFRESH_COOKIE]
  return value === undefined || value.length === 0 || value.length > MAX_REFRESH_COOKIE_LENGTH ? null : value
}

const notSignedIn = () => new AppError(401, 'NOT_SIGNED_IN', 'No console session here; sign in')

/** Whether a failure means the cookie is worthless (as opposed to a busy store, worth a retry). */
const refused = (err: unknown) => err instanceof AppError && err.statusCode === 401

/**
 * The console's sessions: the auth service's own register, login, refresh and logout, with the
 * refresh token kept in an HttpOnly cookie scoped to `path` instead of in the body.
 */
export class ConsoleSessions {
  constructor (private readonly auth: AuthService, private readonly clock: Clock, private readonly path: string) {}

  /** Hands the pair's refresh token to the browser as the cookie; the body keeps only the access token. */
  start (request: FastifyRequest, reply: FastifyReply, pair: TokenPair) {
    const maxAge = Math.max(0, Math.floor((pair.sessionExpiresAt - this.clock.now()) / 1000))
    reply.setCookie(REFRESH_COOKIE, pair.refreshToken, { ...attributes(request, this.path), maxAge })
    reply.header('cache-control', 'no-store')
    return { tokenType: pair.tokenType, accessToken: pair.accessToken, expiresIn: pair.expiresIn, user: pair.user }
  }

  /** Tells the browser to drop the cookie (an expired one with the same name and path). */
  clear (request: FastifyRequest, reply: FastifyReply) {
    reply.clearCookie(REFRESH_COOKIE, attributes(request, this.path))
    reply.header('cache-control', 'no-store')
  }

  /** Exchanges the cookie for a new pair (single use, reuse detection); a refused cookie is cleared. */
  async refresh (request: FastifyRequest, reply: FastifyReply) {
    try {
      const token = refreshCookieOf(request)
      if (token === null) throw notSignedIn()
      return this.start(request, reply, await this.auth.refresh(token, requestContext(request)))
    } catch (err) {
      if (refused(err)) this.clear(request, reply)
      throw err
    }
  }

  /**
   * Ends the cookie's session (or, without a cookie, the bearer token's), or every session of the
   * account; always clears the cookie. Nothing to end is not an error: signing out is idempotent.
   */
  async logout (request: FastifyRequest, reply: FastifyReply, everywhere: boolean) {
    const ctx = requestContext(request)
    const token = refreshCookieOf(request)
    if (token !== null) {
      await this.auth.logoutWithRefreshToken(token, everywhere, ctx)
    } else {
      const principal = await this.bearerPrincipal(request)
      if (principal !== null) await (everywhere ? this.auth.logoutAll(principal, ctx) : this.auth.logout(principal, ctx))
    }
    this.clear(request, reply)
  }

  private async bearerPrincipal (request: FastifyRequest): Promise<Principal | null> {
    const token = bearerToken(request)
    if (token === null) return null
    try {
      return await this.auth.authenticate(token)
    } catch (err) {
      if (refused(err)) return null
      throw err
    }
  }
}
