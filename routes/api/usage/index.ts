import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { principalOf } from '../../../plugins/app/auth/index.ts'
import { errorResponses } from '../../../schemas/error.ts'
import { UsageSummary } from '../../../schemas/usage.ts'

const usage: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.addHook('onRequest', fastify.authenticate)

  fastify.get('/summary', {
    schema: {
      operationId: 'getUsageSummary',
      summary: 'Month-to-date usage',
      description: 'Totals by key and by service for the current UTC month, and the top keys.',
      tags: ['usage'],
      security: [{ bearerAuth: [] }],
      response: { 200: UsageSummary, ...errorResponses(401) }
    }
  }, async (request) => {
    return fastify.usage.summary(principalOf(request).id)
  })
}

export default usage
