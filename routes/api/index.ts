import type { FastifyInstance } from 'fastify'
import auth from './auth/index.ts'
import health from './health.ts'
import system from './system/index.ts'

/** Everything under /api. Each concern is its own encapsulated plugin. */
export default async function api (fastify: FastifyInstance) {
  await fastify.register(health)
  await fastify.register(auth, { prefix: '/auth' })
  await fastify.register(system, { prefix: '/system' })
}
