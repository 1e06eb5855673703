import cors from '@fastify/cors'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/** CORS for the allow-list in FRONTEND_URL; with none set, no cross-origin browser access. */
export default fp(async function corsPlugin (fastify: FastifyInstance) {
  const origins = fastify.config.corsOrigins
  await fastify.register(cors, {
    origin: origins.length === 0 ? false : origins,
    methods: ['GET', 'POST', 'PATCH', 'PUT', 'DELETE'],
    allowedHeaders: ['Authorization', 'Content-Type', 'Idempotency-Key'],
    exposedHeaders: ['Retry-After', 'RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset'],
    credentials: false,
    maxAge: 600
  })
}, { name: 'cors', dependencies: ['config'] })
