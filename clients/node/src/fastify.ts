import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Guard, type GuardOptions } from './policy.ts'
import type { VerifyResult } from './verify.ts'

declare module 'fastify' {
  interface FastifyRequest {
    /** Keyward's answer for the caller's key; null when Keyward was unreachable and the policy failed open. */
    keyward: VerifyResult | null
  }
}

export type KeywardFastifyOptions = GuardOptions

/**
 * Verifies the caller's key on every request of the context it is registered in (and, being
 * unencapsulated, of its parent): register it inside the context of the routes it protects.
 */
async function keywardPlugin (fastify: FastifyInstance, options: KeywardFastifyOptions) {
  const guard = new Guard(options)
  fastify.decorateRequest('keyward', null)
  fastify.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const { result, refusal } = await guard.check(request.headers)
    request.keyward = result
    if (refusal === null) return
    if (refusal.retryAfter !== null) reply.header('retry-after', String(refusal.retryAfter))
    return reply.code(refusal.statusCode).send(guard.errorBody(refusal))
  })
}

// What fastify-plugin does: the hook applies to the context that registers the plugin.
Object.assign(keywardPlugin, { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: '@keyward/client/fastify' })

export default keywardPlugin
export { keywardPlugin as keyward }
export type { Refusal, UnavailableEvent } from './policy.ts'
