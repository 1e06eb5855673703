import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { UsageMeter } from './meter.ts'
import { UsageService } from './service.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** Charges in memory, flushed to the store in batches (verification charges here). */
    meter: UsageMeter
    usage: UsageService
  }
}

/** Usage metering: the in-memory meter verification charges, and usage read and recorded through the API. */
export default fp(async function usagePlugin (fastify: FastifyInstance) {
  const meter = new UsageMeter(fastify.store, fastify.clock, {
    flushIntervalMs: fastify.config.keys.usageFlushIntervalMs,
    onError: (err) => fastify.log.error({ err }, 'usage flush failed; the counts are kept and retried')
  })
  fastify.decorate('meter', meter)
  fastify.decorate('usage', new UsageService(fastify.store, fastify.keys, meter, fastify.clock))
  meter.start()
  // Flushes what is pending before the store closes (plugins close in reverse order).
  fastify.addHook('onClose', async () => { await meter.stop() })
}, { name: 'usage', dependencies: ['config', 'store', 'clock', 'keys'] })
