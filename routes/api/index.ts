import type { FastifyInstance } from 'fastify'
import { NoQuery } from '../../schemas/common.ts'
import audit from './audit/index.ts'
import auth from './auth/index.ts'
import consoleSession from './auth/console.ts'
import health from './health.ts'
import notifications from './notifications/index.ts'
import webhook from './auth/webhook.ts'
import keys from './keys/index.ts'
import system from './system/index.ts'
import usage from './usage/index.ts'
import verify from './keys/verify.ts'
import vault from './vault/index.ts'

/** Everything under /api. Each concern is its own encapsulated plugin. */
export default async function api (fastify: FastifyInstance) {
  // A route that declares no query string takes none: `POST /api/keys?x=1` is a 400, not a 201.
  fastify.addHook('onRoute', (route) => {
    if (route.schema?.querystring === undefined) route.schema = { ...route.schema, querystring: NoQuery }
  })
  await fastify.register(health)
  await fastify.register(auth, { prefix: '/auth' })
  await fastify.register(webhook, { prefix: '/auth' })
  await fastify.register(consoleSession, { prefix: '/auth/console' })
  await fastify.register(notifications, { prefix: '/notifications' })
  await fastify.register(verify, { prefix: '/keys' })
  await fastify.register(keys, { prefix: '/keys' })
  await fastify.register(usage, { prefix: '/usage' })
  await fastify.register(vault, { prefix: '/vault' })
  await fastify.register(audit, { prefix: '/audit' })
  await fastify.register(system, { prefix: '/system' })
}
