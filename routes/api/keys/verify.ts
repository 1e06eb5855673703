import { hash } from 'node:crypto'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { LRUCache } from 'lru-cache'
import { bearerToken } from '../../../plugins/app/auth/index.ts'
import { AppError, unauthorized } from '../../../plugins/app/errors.ts'
import type { Hit } from '../../../plugins/app/rate-limit/tiers.ts'
import type { VerifyAnswer, VerifyInput } from '../../../plugins/app/verify/service.ts'
import { errorResponses } from '../../../schemas/error.ts'
import { VerifyBody, VerifyResult } from '../../../schemas/verify.ts'

/** How long this process trusts what it last learned of a client's verify-failure block. */
const BLOCK_MEMO_MS = 1000

function rateLimited (max: number, remaining: number, ttlMs: number) {
  const seconds = Math.max(1, Math.ceil(ttlMs / 1000))
  return new AppError(429, 'RATE_LIMITED', `Too many requests; retry in ${seconds} seconds`, {
    'retry-after': String(seconds),
    'ratelimit-limit': String(max),
    'ratelimit-remaining': String(remaining),
    'ratelimit-reset': String(seconds)
  })
}

/** POST /api/keys/verify: the hot path, called by the key owner's backend on every request it serves. */
const verify: FastifyPluginAsyncTypebox = async (fastify) => {
  const { verifier, limiter } = fastify
  const failures = fastify.tierPolicies.verifyFailures
  const perCaller = fastify.tierPolicies.verify
  // Per client IP: until when it is blocked by the verify-failure tier (0 = not blocked), as last
  // read from the shared store. A block set by another process applies here within BLOCK_MEMO_MS.
  const blockMemo = new LRUCache<string, { until: number }>({ max: 100_000, ttl: BLOCK_MEMO_MS })

  function checkBlocked (ip: string): void | Promise<void> {
    const memo = blockMemo.get(ip)
    if (memo !== undefined) {
      const left = memo.until - Date.now()
      if (left > 0) throw rateLimited(failures.max, 0, left)
      return
    }
    return limiter.peek('verifyFailures', ip).then((hit) => {
      blockMemo.set(ip, { until: hit.blocked ? Date.now() + hit.ttl : 0 })
      if (hit.blocked) throw rateLimited(failures.max, 0, hit.ttl)
    })
  }

  function countFailure (ip: string, answer: VerifyAnswer): VerifyAnswer | Promise<VerifyAnswer> {
    if (answer.code !== 'MALFORMED' && answer.code !== 'NOT_FOUND') return answer
    return limiter.hit('verifyFailures', ip, failures.windowMs, failures.max).then((hit: Hit) => {
      if (hit.blocked) blockMemo.set(ip, { until: Date.now() + hit.ttl })
      return answer
    })
  }

  async function perCallerLimit (token: string) {
    // Keyed by the credential (its digest), so each backend key or session has its own budget.
    const hit = await limiter.hit('verify', hash('sha256', token, 'base64url'), perCaller.windowMs, perCaller.max)
    if (hit.blocked) throw rateLimited(perCaller.max, 0, hit.ttl)
  }

  function answer (ip: string, body: VerifyInput, ownerId: string) {
    const result = verifier.verify(ownerId, body)
    return result instanceof Promise ? result.then((r) => countFailure(ip, r)) : countFailure(ip, result)
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
      description: 'Authenticate with an access token or an issued key carrying the `keyward:verify` scope. Checks format, lookup, status and expiry, scopes, the key\'s rate limit and its monthly usage, in that order; usage is charged (`cost`, default 1) only when every check passed. Another owner\'s key answers NOT_FOUND. A client whose calls keep answering MALFORMED or NOT_FOUND is blocked (429) by the verify-failure tier.',
      tags: ['verify'],
      security: [{ bearerAuth: [] }],
      body: VerifyBody,
      response: { 200: VerifyResult, ...errorResponses(400, 401, 413, 415, 429) }
    }
  }, (request) => {
    const blocked = checkBlocked(request.ip)
    const token = bearerToken(request)
    if (token === null) throw unauthorized('A bearer access token or verify key is required')
    // A refused credential counts as a failure too, so guessing callers get blocked like guessing keys.
    const refused = (err: unknown) => {
      if ((err as { statusCode?: number }).statusCode !== 401) throw err
      return limiter.hit('verifyFailures', request.ip, failures.windowMs, failures.max).then((hit) => {
        if (hit.blocked) blockMemo.set(request.ip, { until: Date.now() + hit.ttl })
        throw err
      })
    }
    const run = (ownerId: string) => perCaller.max > 0
      ? perCallerLimit(token).then(() => answer(request.ip, request.body, ownerId))
      : answer(request.ip, request.body, ownerId)
    // The cached path answers without awaiting anything; misses fall back to promises.
    if (blocked === undefined) {
      const ownerId = verifier.caller(token)
      return typeof ownerId === 'string' ? run(ownerId) : ownerId.then(run, refused)
    }
    return blocked.then(() => verifier.caller(token)).then(run, refused)
  })
}

export default verify
