import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { bearerToken } from '../../../plugins/app/auth/index.ts'
import { unauthorized } from '../../../plugins/app/errors.ts'
import { errorResponses } from '../../../schemas/error.ts'
import { VerifyBody, VerifyResult } from '../../../schemas/verify.ts'

/** POST /api/keys/verify: the hot path, called by the key owner's backend on every request it serves. */
const verify: FastifyPluginAsyncTypebox = async (fastify) => {
  const verifier = fastify.verifier

  fastify.post('/verify', {
    // Called by servers, never rendered by a browser: browser security headers would only add bytes to every answer.
    config: { securityHeaders: false },
    schema: {
      summary: 'Verify an issued key',
      description: 'Authenticate with an access token or an issued key carrying the `keyward:verify` scope. Checks format, lookup, status and expiry, scopes, the key\'s rate limit and its monthly usage, in that order; usage is charged (`cost`, default 1) only when every check passed. Another owner\'s key answers NOT_FOUND.',
      tags: ['verify'],
      security: [{ bearerAuth: [] }],
      body: VerifyBody,
      response: { 200: VerifyResult, ...errorResponses(400, 401, 413, 415, 429) }
    }
  }, (request) => {
    const token = bearerToken(request)
    if (token === null) throw unauthorized('A bearer access token or verify key is required')
    const ownerId = verifier.caller(token)
    // The cached path answers without awaiting anything; misses fall back to promises.
    return typeof ownerId === 'string' ? verifier.verify(ownerId, request.body) : ownerId.then((id) => verifier.verify(id, request.body))
  })
}

export default verify
