import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { openStore } from './open.ts'
import type { Store } from './types/index.ts'

declare module 'fastify' {
  interface FastifyInstance {
    store: Store
  }
}

/** The Store: MongoDB when MONGODB_URI is set (the mongodb plugin owns the client), the embedded SQLite file otherwise. */
export default fp(async function storePlugin (fastify: FastifyInstance) {
  const store = openStore(fastify.config, fastify.config.mongo === undefined ? undefined : { client: fastify.mongo.client, owned: false })
  await store.init()
  fastify.decorate('store', store)
  fastify.addHook('onClose', async () => { await store.close() })
}, { name: 'store', dependencies: ['config', 'mongodb'] })
