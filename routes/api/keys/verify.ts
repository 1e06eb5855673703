import { hash } from 'node:crypto'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { bearerToken } from '../../../plugins/app/auth/index.ts'
import { unauthorized } from '../../../plugins/app/errors.ts'
import { rateLimited, VerifyFailures } from '../../../plugins/app/verify/failures.ts'
import type { VerifyCaller, VerifyInput } from '../../../plugins/app/verify/service.ts'
import { errorResponses } from '../../../schemas/error.ts'
import { VerifyBody, VerifyResult } from '../../../schemas/verify.ts'

/** POST /api/keys/verify: the hot path, called by the key owner's backend on every request it serves. */
const verify: FastifyPluginAsyncTypebox = async (fastify) => {
  const { verifier, limiter } = fastify
  const perCaller = fastify.tierPolicies.verify
  const failures = new VerifyFailures(limiter, fastify.tierPolicies.verifyFailures, fastify.clock)

  async function perCallerLimit (token: string) {
    // Keyed by the credential (its digest), so each backend key or session has its own budget.
    const hit = await limiter.hit('verify', hash('sha256', token, 'base64url'), perCaller.windowMs, perCaller.max)
    if (hit.blocked) throw rateLimited(perCaller.max, 0, hit.ttl)
  }

  function answer (caller: VerifyCaller, body: VerifyInput) {
    const result = verifier.verify(caller.ownerId, body)
    return result instanceof Promise
      ? result.then((r) => failures.screen(caller, body.client, r))
      : failures.screen(caller, body.client, result)
  }

  function run (caller: VerifyCaller, token: string, body: VerifyInput) {
    return perCaller.max > 0 ? perCallerLimit(token).then(() => answer(caller, body)) : answer(caller, body)
  }

  fastify.post('/verify', {
    config: {
      // Called by servers, never rendered by a browser: browser security headers would only add bytes.
      securityHeaders: false,
      // Backends verify far more than the general tier allows; verify has its own tiers below.
      rateLimit: false
    },
    schema: {
      summary: 'Verify an issued key',
      description: 'Authenticate with an access token or an issued key carrying the `keyward:verify` scope. Checks format, lookup, status and expiry, scopes, the key\'s rate limit and its monthly usage, in that order; usage is charged (`cost`, default 1) only when every check passed. Another owner\'s key answers NOT_FOUND. Calls answering MALFORMED or NOT_FOUND count in the verify-failure tier per caller credential, or per caller and `client` when given; past its limit those calls answer 429, while keys that verify keep answering.',
      tags: ['verify'],
      security: [{ bearerAuth: [] }],
      body: VerifyBody,
      response: { 200: VerifyResult, ...errorResponses(400, 401, 413, 415, 429) }
    }
  }, (request) => {
    const token = bearerToken(request)
    if (token === null) throw unauthorized('A bearer access token or verify key is required')
    // The cached path answers without awaiting anything or allocating; misses fall back to promises.
    const caller = verifier.caller(token)
    if (caller instanceof Promise) {
      return caller.then((resolved) => run(resolved, token, request.body), (err) => failures.refusedCredential(request.ip, err))
    }
    return run(caller, token, request.body)
  })
}

export default verify
