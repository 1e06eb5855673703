import jwt from '@fastify/jwt'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/**
 * HS256 access tokens. Verification pins the algorithm (no `alg: none`, no key confusion) and
 * leaves expiry to the auth service, which checks it against the injectable clock.
 */
export default fp(async function jwtPlugin (fastify: FastifyInstance) {
  await fastify.register(jwt, {
    secret: fastify.config.auth.jwtSecret,
    sign: { algorithm: 'HS256' },
    verify: { algorithms: ['HS256'], ignoreExpiration: true }
  })
}, { name: 'jwt', dependencies: ['config'] })
