import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { type CacheBus, TwoLayerCache } from './cache.ts'

declare module 'fastify' {
  interface FastifyInstance {
    cache: TwoLayerCache
  }
}

interface BusMessage { type: 'keyward:cache', raw: string }

/**
 * In a worker of Keyward's own cluster (cluster.ts) without Redis: invalidations go to the
 * primary over IPC, which relays them to the other workers, so a logout or a revoked key is
 * seen by every worker at once instead of when its cached copy expires.
 */
function clusterBus (): CacheBus | null {
  if (process.env.KEYWARD_CLUSTER_WORKER !== '1' || typeof process.send !== 'function') return null
  let listener: ((message: unknown) => void) | undefined
  return {
    publish (raw) {
      const message: BusMessage = { type: 'keyward:cache', raw }
      process.send?.(message)
    },
    subscribe (onMessage) {
      listener = (message) => {
        const m = message as Partial<BusMessage> | null
        if (m?.type === 'keyward:cache' && typeof m.raw === 'string') onMessage(m.raw)
      }
      process.on('message', listener)
    },
    close () {
      if (listener !== undefined) process.off('message', listener)
    }
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
  const cache = new TwoLayerCache({ redis, subscriber, bus: redis === null ? clusterBus() : null, prefix: fastify.config.redis?.prefix ?? 'kw:' })
  await cache.start()
  fastify.decorate('cache', cache)
  fastify.addHook('onClose', async () => {
    await cache.stop()
    subscriber?.disconnect()
  })
}, { name: 'cache', dependencies: ['config', 'redis'] })
