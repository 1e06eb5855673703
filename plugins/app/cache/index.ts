import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { TwoLayerCache } from './cache.ts'

declare module 'fastify' {
  interface FastifyInstance {
    cache: TwoLayerCache
  }
}

export default fp(async function cachePlugin (fastify: FastifyInstance) {
  const redis = fastify.redis
  let subscriber = null
  if (redis !== null) {
    subscriber = redis.duplicate({ connectionName: 'keyward-cache-sub' })
    subscriber.on('error', () => {})
    await subscriber.connect()
  }
  const cache = new TwoLayerCache({ redis, subscriber, prefix: fastify.config.redis?.prefix ?? 'kw:' })
  await cache.start()
  fastify.decorate('cache', cache)
  fastify.addHook('onClose', async () => {
    await cache.stop()
    subscriber?.disconnect()
  })
}, { name: 'cache', dependencies: ['config', 'redis'] })
