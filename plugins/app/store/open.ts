import type { MongoClient } from 'mongodb'
import type { Config } from '../../../config.ts'
import { AuditChain } from './audit-chain.ts'
import { MongoStore } from './mongo.ts'
import { SqliteStore } from './sqlite.ts'
import type { Store } from './types.ts'

/** The configured store: MongoDB when MONGODB_URI is set (given its connected client), SQLite otherwise. */
export function openStore (config: Config, mongo?: { client: MongoClient, owned: boolean }): Store {
  const auditChain = new AuditChain(config.keys.hashSecret)
  if (config.mongo === undefined) return new SqliteStore({ dataDir: config.dataDir, busyTimeoutMs: config.sqliteBusyTimeoutMs, auditChain })
  if (mongo === undefined) throw new Error('MONGODB_URI is set but no MongoDB client was given')
  const db = mongo.client.db(config.mongo.database)
  return new MongoStore(db, { client: mongo.client, closeClient: mongo.owned, auditChain })
}
