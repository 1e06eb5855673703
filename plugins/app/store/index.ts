import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { MongoStore } from './mongo.ts'
import { SqliteStore } from './sqlite.ts'
import type { Store } from './types.ts'

declare module 'fastify' {
  interface FastifyInstance {
    store: Store
  }
}

/** The Store: MongoDB when MONGODB_URI is set, the embedded SQLite file otherwise. */
export default fp(async function storePlugin (fastify: FastifyInstance) {
  const store: Store = fastify.config.mongo === undefined
    ? new SqliteStore({ dataDir: fastify.config.dataDir })
    : new MongoStore(fastify.mongo.db!, { client: fastify.mongo.client })
  await store.init()
  fastify.decorate('store', store)
  fastify.addHook('onClose', async () => { await store.close() })
}, { name: 'store', dependencies: ['config', 'mongodb'] })
