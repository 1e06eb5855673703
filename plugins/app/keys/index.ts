import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { AuditService } from '../audit/service.ts'
import { VaultService } from '../vault/service.ts'
import { KeyService } from './service.ts'

declare module 'fastify' {
  interface FastifyInstance {
    keys: KeyService
    vault: VaultService
    audit: AuditService
    /** Per-user rate-limit tiers, used as preHandlers after authenticate. */
    tiers: { keyCreation: (request: FastifyRequest) => Promise<void>, heavy: (request: FastifyRequest) => Promise<void> }
  }
}

const HOUR_MS = 3_600_000

export default fp(async function keysPlugin (fastify: FastifyInstance) {
  const { keys } = fastify.config
  const vault = new VaultService(fastify.store, keys.vaultKdf)
  fastify.decorate('vault', vault)
  fastify.decorate('keys', new KeyService({ store: fastify.store, cache: fastify.cache, clock: fastify.clock, vault, hashSecret: keys.hashSecret }))
  fastify.decorate('audit', new AuditService(fastify.store))

  const byUser = (request: FastifyRequest) => request.principal?.id ?? request.ip
  fastify.decorate('tiers', {
    keyCreation: fastify.rateLimit({ max: keys.createPerHour, timeWindow: HOUR_MS, keyGenerator: byUser }) as (request: FastifyRequest) => Promise<void>,
    heavy: fastify.rateLimit({ max: keys.heavyPerHour, timeWindow: HOUR_MS, keyGenerator: byUser }) as (request: FastifyRequest) => Promise<void>
  })
}, { name: 'keys', dependencies: ['config', 'store', 'cache', 'clock', 'rate-limit'] })
