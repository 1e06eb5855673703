import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { AuditService } from '../audit/service.ts'
import { AuditChain } from '../store/audit-chain.ts'
import { VaultService } from '../vault/service.ts'
import { KeyService } from './service.ts'

declare module 'fastify' {
  interface FastifyInstance {
    keys: KeyService
    vault: VaultService
    audit: AuditService
  }
}

export default fp(async function keysPlugin (fastify: FastifyInstance) {
  const { keys } = fastify.config
  const vault = new VaultService(fastify.store, keys.vaultKdf)
  fastify.decorate('vault', vault)
  fastify.decorate('keys', new KeyService({ store: fastify.store, cache: fastify.cache, clock: fastify.clock, vault, hashSecret: keys.hashSecret }))
  fastify.decorate('audit', new AuditService(fastify.store, new AuditChain(keys.hashSecret)))
}, { name: 'keys', dependencies: ['config', 'store', 'cache', 'clock'] })
