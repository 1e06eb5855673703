import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { KeyService } from './service.ts'

declare module 'fastify' {
  interface FastifyInstance {
    keys: KeyService
  }
}

/** Held and issued keys: create, list, reveal, rotate, revoke. */
export default fp(async function keysPlugin (fastify: FastifyInstance) {
  const { keys } = fastify.config
  fastify.decorate('keys', new KeyService({ store: fastify.store, cache: fastify.cache, clock: fastify.clock, vault: fastify.vault, hashSecret: keys.hashSecret }))
}, { name: 'keys', dependencies: ['config', 'store', 'cache', 'clock', 'vault'] })
