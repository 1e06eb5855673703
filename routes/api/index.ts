import type { FastifyInstance } from 'fastify'
import health from './health.ts'

/** Everything under /api. Each concern is its own encapsulated plugin. */
export default async function api (fastify: FastifyInstance) {
  await fastify.register(health)
}
