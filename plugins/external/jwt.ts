import jwt from '@fastify/jwt'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/** Verified access tokens remembered per process (about 0.5 KiB each). */
const VERIFIED_TOKENS = 10_000
/** No longer than this; expiry itself is checked by the auth service on every request. */
const VERIFIED_TTL_MS = 60_000

/**
 * HS256 access tokens. Verification pins the algorithm (no `alg: none`, no key confusion) and
 * leaves expiry to the auth service, which checks it against the injectable clock.
 *
 * Verified tokens are remembered (fast-jwt's cache, keyed by a SHA-256 of the token, never the
 * token): a client sends the same access token on every request until it refreshes, and the
 * signature check then costs one hash instead of decoding and an HMAC. Revocation is unaffected:
 * the auth service checks the session behind every token on every request.
 */
export default fp(async function jwtPlugin (fastify: FastifyInstance) {
  await fastify.register(jwt, {
    secret: fastify.config.auth.jwtSecret,
    sign: { algorithm: 'HS256' },
    verify: { algorithms: ['HS256'], ignoreExpiration: true, cache: VERIFIED_TOKENS, cacheTTL: VERIFIED_TTL_MS }
  })
}, { name: 'jwt', dependencies: ['config'] })
