import type { MongoClient } from 'mongodb'
import type { Config } from '../../../config.ts'
import { AuditChain } from './audit-chain.ts'
import { staleReadPreference } from './mongo/connection.ts'
import { createMongoStore } from './mongo/index.ts'
import { createSqliteStore } from './sqlite/index.ts'
import type { Store } from './types/index.ts'

/** The configured store: MongoDB when MONGODB_URI is set (given its connected client), SQLite otherwise. */
export function openStore (config: Config, mongo?: { client: MongoClient, owned: boolean }): Store {
  const auditChain = new AuditChain(config.keys.hashSecret)
  if (config.mongo === undefined) return createSqliteStore({ dataDir: config.dataDir, busyTimeoutMs: config.sqliteBusyTimeoutMs, auditChain })
  if (mongo === undefined) throw new Error('MONGODB_URI is set but no MongoDB client was given')
  return createMongoStore(mongo.client.db(config.mongo.database), {
    client: mongo.client,
    closeClient: mongo.owned,
    staleReadPreference: staleReadPreference(config.mongo.staleReads.mode, config.mongo.staleReads.maxStalenessSeconds),
    auditChain
  })
}
