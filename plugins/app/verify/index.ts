import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { VerifyFailures } from './failures.ts'
import { Verifier } from './service.ts'
import { RedisMonthlyUsage } from './monthly-usage.ts'
import { MemoryBuckets, RedisBuckets } from './token-bucket.ts'

declare module 'fastify' {
  interface FastifyInstance {
    verifier: Verifier
  }
}

/** Verification of issued keys: the hot path, its caller limits and what it keeps in memory. */
export default fp(async function verifyPlugin (fastify: FastifyInstance) {
  const { config, limiter, tierPolicies } = fastify
  const prefix = config.redis?.prefix ?? 'kw:'
  const buckets = fastify.redis === null ? new MemoryBuckets() : new RedisBuckets(fastify.redis, prefix)
  const verifier = new Verifier({
    store: fastify.store,
    cache: fastify.cache,
    clock: fastify.clock,
    auth: fastify.auth,
    meter: fastify.meter,
    buckets,
    monthly: fastify.redis === null ? null : new RedisMonthlyUsage(fastify.redis, prefix),
    hashSecret: config.keys.hashSecret,
    limiter,
    perCaller: tierPolicies.verify,
    failures: new VerifyFailures(limiter, tierPolicies.verifyFailures, fastify.clock)
  })
  fastify.keys.onChange((ownerId, keys) => verifier.forget(ownerId, keys.map((k) => k.id)))
  fastify.auth.onAccountDeleted((ownerId, hashes) => verifier.forgetHashes(ownerId, hashes))
  fastify.decorate('verifier', verifier)
}, { name: 'verify', dependencies: ['config', 'store', 'cache', 'clock', 'redis', 'rate-limit', 'auth', 'keys', 'usage'] })
