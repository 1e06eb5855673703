import fastifyMongo from '@fastify/mongodb'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { MongoClient, type MongoClientOptions } from 'mongodb'

/** The seed's pool tuning; durability and read preference are chosen per operation by the store. */
const POOL_OPTIONS: MongoClientOptions = {
  maxPoolSize: 50,
  minPoolSize: 5,
  maxIdleTimeMS: 30_000,
  compressors: ['zlib'],
  retryWrites: true,
  writeConcern: { w: 'majority' },
  appName: 'keyward'
}

/**
 * Connects before the store plugin loads. Server selection times out below Fastify's plugin
 * timeout, so an unreachable MongoDB stops start-up with one clear line, and the client is
 * closed on failure so nothing holds the process open.
 */
export async function connectMongo (uri: string, timeoutMs: number): Promise<MongoClient> {
  const client = new MongoClient(uri, { ...POOL_OPTIONS, serverSelectionTimeoutMS: timeoutMs, connectTimeoutMS: timeoutMs })
  try {
    await client.connect()
    await client.db('admin').command({ ping: 1 })
    return client
  } catch (err) {
    await client.close(true).catch(() => {})
    throw new Error(`MongoDB at MONGODB_URI is unreachable (${(err as Error).message.split('\n')[0]})`)
  }
}

export default fp(async function mongodbPlugin (fastify: FastifyInstance) {
  const mongo = fastify.config.mongo
  if (mongo === undefined) return
  const client = await connectMongo(mongo.uri, mongo.connectTimeoutMs)
  fastify.addHook('onClose', async () => { await client.close() })
  await fastify.register(fastifyMongo, { client, database: mongo.database })
}, { name: 'mongodb', dependencies: ['config'] })
