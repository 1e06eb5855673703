import pino from 'pino'
import type { Config } from '../config.ts'
import { TwoLayerCache } from '../plugins/app/cache/cache.ts'
import { systemClock } from '../plugins/app/clock.ts'
import { Notifier, WebhookSecrets } from '../plugins/app/notifications/notifier.ts'
import { openStore } from '../plugins/app/store/open.ts'
import type { DeliveryRecord } from '../plugins/app/store/types/index.ts'
import { connectMongo } from '../plugins/external/mongodb.ts'
import { connectRedis } from '../plugins/external/redis.ts'
import type { JobContext } from '../plugins/app/jobs/context.ts'

/**
 * The jobs' dependencies outside the HTTP app (worker process, `npm run jobs`): config, store,
 * Redis and the cache, nothing that listens.
 */
export async function openJobContext (config: Config, options: { onQueued?: (d: DeliveryRecord) => Promise<void> } = {}) {
  const log = pino({ level: config.logLevel, redact: { paths: ['*.secret', '*.password', '*.token'], censor: '[redacted]' } })
  const mongoClient = config.mongo === undefined ? undefined : await connectMongo(config.mongo.uri, config.mongo.connectTimeoutMs)
  const store = openStore(config, mongoClient === undefined ? undefined : { client: mongoClient, owned: true })
  await store.init()
  const redis = config.redis === undefined ? null : await connectRedis(config.redis.url, { name: 'keyward-jobs', commandTimeoutMs: config.redis.commandTimeoutMs })
  const cache = new TwoLayerCache({ redis, prefix: config.redis?.prefix ?? 'kw:' })
  const notifier = new Notifier({
    store,
    clock: systemClock,
    secrets: new WebhookSecrets(config.keys.hashSecret),
    allowPrivate: config.webhooks.allowPrivate,
    timeoutMs: config.webhooks.timeoutMs,
    onQueued: options.onQueued
  })
  const ctx: JobContext = { store, cache, redis, clock: systemClock, notifier, config, log }
  return {
    ctx,
    close: async () => {
      await cache.stop()
      await store.close()
      if (redis !== null) await redis.quit().catch(() => redis.disconnect())
    }
  }
}
