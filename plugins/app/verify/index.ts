import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { UsageMeter } from '../usage/meter.ts'
import { UsageService } from '../usage/service.ts'
import { Verifier } from './service.ts'
import { MemoryBuckets, RedisBuckets } from './token-bucket.ts'

declare module 'fastify' {
  interface FastifyInstance {
    verifier: Verifier
    meter: UsageMeter
    usage: UsageService
  }
}

/** Verification and usage metering: the hot path and what it needs in memory. */
export default fp(async function verifyPlugin (fastify: FastifyInstance) {
  const { config } = fastify
  const meter = new UsageMeter(fastify.store, fastify.clock, {
    flushIntervalMs: config.keys.usageFlushIntervalMs,
    onError: (err) => fastify.log.error({ err }, 'usage flush failed; the counts are kept and retried')
  })
  const buckets = fastify.redis === null ? new MemoryBuckets() : new RedisBuckets(fastify.redis, config.redis?.prefix ?? 'kw:')
  const verifier = new Verifier({
    store: fastify.store,
    cache: fastify.cache,
    clock: fastify.clock,
    auth: fastify.auth,
    meter,
    buckets,
    hashSecret: config.keys.hashSecret
  })
  fastify.keys.onChange((ownerId, keys) => verifier.forget(ownerId, keys.map((k) => k.id)))
  fastify.auth.onAccountDeleted((ownerId, hashes) => verifier.forgetHashes(ownerId, hashes))
  fastify.decorate('verifier', verifier)
  fastify.decorate('meter', meter)
  fastify.decorate('usage', new UsageService(fastify.store, fastify.keys, meter, fastify.clock))
  meter.start()
  // Flushes what is pending before the store closes (plugins close in reverse order).
  fastify.addHook('onClose', async () => { await meter.stop() })
}, { name: 'verify', dependencies: ['config', 'store', 'cache', 'clock', 'auth', 'keys', 'redis'] })
