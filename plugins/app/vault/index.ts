import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { VaultService } from './service.ts'

declare module 'fastify' {
  interface FastifyInstance {
    vault: VaultService
  }
}

/** Each user's vault: the passphrase-wrapped data key that held and recoverable keys are sealed under. */
export default fp(async function vaultPlugin (fastify: FastifyInstance) {
  fastify.decorate('vault', new VaultService(fastify.store, fastify.config.keys.vaultKdf))
}, { name: 'vault', dependencies: ['config', 'store'] })
