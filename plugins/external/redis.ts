import { createRequire } from 'node:module'
import type { FastifyInstance, FastifyPluginCallback } from 'fastify'
import fp from 'fastify-plugin'
import { type Command, Redis } from 'ioredis'
import type { WriteableStream } from 'ioredis/built/types.js'

/**
 * Loaded without its type declarations: they declare `fastify.redis` as never null, and Keyward's
 * is null in embedded mode, which the compiler must keep making every caller check.
 */
const fastifyRedis = createRequire(import.meta.url)('@fastify/redis') as FastifyPluginCallback<{ client: Redis }>

declare module 'fastify' {
  interface FastifyInstance {
    /** The shared Redis connection, or null in embedded mode (no REDIS_URL). */
    redis: Redis | null
  }
}

const TIMED_OUT = 'Command timed out'

/**
 * A connection that gives up on a frozen server. ioredis fails a command after `commandTimeout`
 * but keeps the connection, so every later command would wait as long again; on the first
 * timeout the connection is dropped and reopened instead. Until the server answers the reopened
 * connection's ready check, commands fail at once (no offline queue) and callers fall back.
 */
class GuardedRedis extends Redis {
  override sendCommand (command: Command, stream?: WriteableStream): unknown {
    const result = super.sendCommand(command, stream)
    command.promise.catch((err: unknown) => {
      if ((err as Error | undefined)?.message === TIMED_OUT && this.status === 'ready') this.disconnect(true)
    })
    return result
  }
}

/**
 * Opens a Redis connection that fails commands at once while disconnected (no offline queue) or
 * after `commandTimeoutMs` when the server does not answer, so callers can fall back to memory
 * instead of waiting, and reconnects in the background.
 */
export async function connectRedis (url: string, options: { name?: string, connectTimeoutMs?: number, commandTimeoutMs?: number } = {}): Promise<Redis> {
  const client = new GuardedRedis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: options.connectTimeoutMs ?? 5000,
    commandTimeout: options.commandTimeoutMs ?? 300,
    connectionName: options.name ?? 'keyward',
    // Commands issued in the same turn of the event loop (concurrent verify calls' bucket, usage
    // and tier scripts) leave in one write and come back in one read: one round trip per batch.
    enableAutoPipelining: true,
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

/**
 * `fastify.redis`: the guarded connection, registered through @fastify/redis, or null in embedded
 * mode (no REDIS_URL), where @fastify/redis is not registered at all.
 */
export default fp(async function redisPlugin (fastify: FastifyInstance) {
  const redis = fastify.config.redis
  if (redis === undefined) {
    fastify.decorate('redis', null)
    return
  }
  const client = await connectRedis(redis.url, { name: 'keyward-api', commandTimeoutMs: redis.commandTimeoutMs })
  // Closed here rather than by @fastify/redis (closeClient), whose quit() rejects while Redis is down.
  fastify.addHook('onClose', async () => {
    await client.quit().catch(() => client.disconnect())
  })
  await fastify.register(fastifyRedis, { client })
}, { name: 'redis', dependencies: ['config'] })
