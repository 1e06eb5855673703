import { createHmac } from 'node:crypto'
import cookie from '@fastify/cookie'
import csrf from '@fastify/csrf-protection'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

export const CSRF_COOKIE = 'keyward_csrf'
export const CSRF_HEADER = 'x-csrf-token'

export interface ConsoleCookiesOptions {
  /** The path both cookies are scoped to: the console session routes' prefix. */
  path: string
}

/**
 * Cookie parsing and CSRF tokens for the console session routes only. Register it inside their
 * encapsulated context: its onRequest hook then parses cookies there and nowhere else.
 */
export default fp<ConsoleCookiesOptions>(async function consoleCookies (fastify: FastifyInstance, opts) {
  // Signs the CSRF secret cookie; derived from JWT_SECRET with a label so no new secret is configured.
  const secret = createHmac('sha256', fastify.config.auth.jwtSecret).update('keyward console cookie signature').digest()
  await fastify.register(cookie, { secret })
  await fastify.register(csrf, {
    cookieKey: CSRF_COOKIE,
    cookieOpts: { path: opts.path, sameSite: 'strict', httpOnly: true, signed: true },
    // Only the header: a form post cannot set it, and bodies keep their strict schemas.
    getToken: (request: FastifyRequest) => request.headers[CSRF_HEADER] as string | undefined,
    logLevel: 'info'
  })
}, { name: 'console-cookies', dependencies: ['config'] })
