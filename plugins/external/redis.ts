import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Redis } from 'ioredis'

declare module 'fastify' {
  interface FastifyInstance {
    /** The shared Redis connection, or null in embedded mode (no REDIS_URL). */
    redis: Redis | null
  }
}

/**
 * Opens a Redis connection that fails commands at once while disconnected (no offline queue),
 * so callers can fall back to memory instead of waiting, and reconnects in the background.
 */
export async function connectRedis (url: string, options: { name?: string, connectTimeoutMs?: number } = {}): Promise<Redis> {
  const client = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: options.connectTimeoutMs ?? 5000,
    connectionName: options.name ?? 'keyward',
    retryStrategy: (times) => Math.min(100 * 2 ** times, 2000)
  })
  // Errors are surfaced through command failures and health; without a listener ioredis would print them.
  client.on('error', () => {})
  try {
    await client.connect()
    await client.ping()
    return client
  } catch (err) {
    client.disconnect()
    throw new Error(`Redis at REDIS_URL is unreachable (${(err as Error).message})`)
  }
}

export default fp(async function redisPlugin (fastify: FastifyInstance) {
  const redis = fastify.config.redis
  if (redis === undefined) {
    fastify.decorate('redis', null)
    return
  }
  const client = await connectRedis(redis.url, { name: 'keyward-api' })
  fastify.decorate('redis', client)
  fastify.addHook('onClose', async () => {
    await client.quit().catch(() => client.disconnect())
  })
}, { name: 'redis', dependencies: ['config'] })
