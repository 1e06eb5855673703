import cors from '@fastify/cors'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/**
 * CORS for the allow-list in FRONTEND_URL; with none set, no cross-origin browser access, and the
 * plugin is not registered at all: with `origin: false` its hook would run on every request to add
 * nothing, and a preflight answers the same 404 through the not-found handler.
 */
export default fp(async function corsPlugin (fastify: FastifyInstance) {
  const origins = fastify.config.corsOrigins
  if (origins.length === 0) return
  await fastify.register(cors, {
    origin: origins,
    methods: ['GET', 'POST', 'PATCH', 'PUT', 'DELETE'],
    allowedHeaders: ['Authorization', 'Content-Type', 'Idempotency-Key'],
    exposedHeaders: ['Retry-After', 'RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset'],
    credentials: false,
    maxAge: 600
  })
}, { name: 'cors', dependencies: ['config'] })
