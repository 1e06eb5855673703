import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { AuditChain } from '../store/audit-chain.ts'
import { AuditService } from './service.ts'

declare module 'fastify' {
  interface FastifyInstance {
    audit: AuditService
  }
}

/** The hash-chained audit trail: reading and checking it (events are written by the store with each change). */
export default fp(async function auditPlugin (fastify: FastifyInstance) {
  fastify.decorate('audit', new AuditService(fastify.store, new AuditChain(fastify.config.keys.hashSecret)))
}, { name: 'audit', dependencies: ['config', 'store'] })
