import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { bearerToken } from '../../../plugins/app/auth/index.ts'
import { errorResponses } from '../../../schemas/error.ts'
import { VerifyBody, VerifyResult } from '../../../schemas/verify.ts'

/** POST /api/keys/verify: the hot path, called by the key owner's backend on every request it serves. */
const verify: FastifyPluginAsyncTypebox = async (fastify) => {
  const { verifier } = fastify

  fastify.post('/verify', {
    config: {
      // Called by servers, never rendered by a browser: browser security headers would only add bytes.
      securityHeaders: false,
      // Backends verify far more than the general tier allows; the verifier applies verify's own tiers.
      rateLimit: false
    },
    schema: {
      operationId: 'verifyKey',
      summary: 'Verify an issued key',
      description: 'Authenticate with an access token or an issued key carrying the `keyward:verify` scope. Checks format, lookup, status and expiry, scopes, the key\'s rate limit and its monthly usage, in that order; usage is charged (`cost`, default 1) only when every check passed. Another owner\'s key answers NOT_FOUND. Calls answering MALFORMED or NOT_FOUND count in the verify-failure tier per caller credential, or per caller and `client` when given; past its limit those calls answer 429, while keys that verify keep answering.',
      tags: ['verify'],
      security: [{ bearerAuth: [] }],
      body: VerifyBody,
      response: { 200: VerifyResult, ...errorResponses(400, 401, 413, 415, 429) }
    }
  }, (request) => verifier.verifyRequest(bearerToken(request), request))
}

export default verify
