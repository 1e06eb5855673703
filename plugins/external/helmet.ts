import helmet from '@fastify/helmet'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/**
 * Security headers. The API answers JSON only, so its CSP forbids everything; the docs UI
 * sets its own, looser policy on its own routes (swagger-ui's staticCSP).
 */
export const autoConfig = {
  contentSecurityPolicy: {
    useDefaults: false,
    directives: {
      defaultSrc: ["'none'"],
      frameAncestors: ["'none'"],
      baseUri: ["'none'"],
      formAction: ["'none'"]
    }
  },
  crossOriginEmbedderPolicy: false,
  strictTransportSecurity: { maxAge: 31_536_000, includeSubDomains: true }
}

export default fp(async function helmetPlugin (fastify: FastifyInstance) {
  await fastify.register(helmet, autoConfig)
}, { name: 'helmet' })
