import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { principalOf } from '../../../plugins/app/auth/index.ts'
import { auditView } from '../../../plugins/app/audit/view.ts'
import { AuditList, AuditQuery, ChainReport } from '../../../schemas/audit.ts'
import { errorResponses } from '../../../schemas/error.ts'

/** The signed-in user's own audit trail. */
const audit: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.addHook('onRequest', fastify.authenticate)
  const tags = ['audit']
  const security = [{ bearerAuth: [] }]

  fastify.get('/', {
    schema: {
      operationId: 'listAuditEvents',
      summary: 'Audit events, newest first',
      tags,
      security,
      querystring: AuditQuery,
      response: { 200: AuditList, ...errorResponses(400, 401) }
    }
  }, async (request) => {
    const page = await fastify.audit.list(principalOf(request).id, request.query)
    return { items: page.items.map(auditView), nextCursor: page.nextCursor }
  })

  fastify.get('/verify', {
    config: { rateLimit: fastify.tier('heavy') },
    schema: {
      operationId: 'verifyAuditChain',
      summary: 'Check the hash chain',
      description: 'Recomputes every link; an edited, removed or reordered event breaks the chain at that point.',
      tags,
      security,
      response: { 200: ChainReport, ...errorResponses(401, 429) }
    }
  }, async (request) => fastify.audit.verify(principalOf(request).id))
}

export default audit
