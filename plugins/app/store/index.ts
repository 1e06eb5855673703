import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { timedStore, type OperationObserver, type TimedStoreOperation } from './timed.ts'
import { openStore } from './open.ts'
import type { Store } from './types/index.ts'

declare module 'fastify' {
  interface FastifyInstance {
    store: Store
  }
}

export interface StorePluginOptions {
  /** Receives the duration of the request paths' store operations (the metrics registry's histogram). */
  observe?: OperationObserver<TimedStoreOperation>
}

/** The Store: MongoDB when MONGODB_URI is set (the mongodb plugin owns the client), the embedded SQLite file otherwise. */
export default fp<StorePluginOptions>(async function storePlugin (fastify: FastifyInstance, { observe }) {
  const store = openStore(fastify.config, fastify.config.mongo === undefined ? undefined : { client: fastify.mongo.client, owned: false })
  await store.init()
  fastify.decorate('store', observe === undefined ? store : timedStore(store, observe))
  fastify.addHook('onClose', async () => { await store.close() })
}, { name: 'store', dependencies: ['config', 'mongodb'] })
