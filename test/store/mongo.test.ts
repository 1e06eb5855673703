import { MongoClient } from 'mongodb'
import { AuditChain } from '../../plugins/app/store/audit-chain.ts'
import { createMongoStore } from '../../plugins/app/store/mongo/index.ts'
import { storeContract, type StoreHarness } from './contract/index.ts'

const uri = process.env.MONGODB_URI
const auditChain = new AuditChain('store-contract-audit-chain-secret')

async function connect (url: string): Promise<MongoClient> {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 5000 })
  try {
    await client.connect()
  } catch (err) {
    // A failed connect can leave monitors running, which would keep the test process alive.
    await client.close().catch(() => {})
    throw new Error(`cannot reach MongoDB at MONGODB_URI: ${(err as Error).message}`, { cause: err })
  }
  return client
}

async function open (url: string): Promise<StoreHarness> {
  const dbName = `keyward_test_${process.pid}_${Date.now()}`
  const client = await connect(url)
  // Primary for listing too: the contract reads its own writes, which a lagging secondary would break at random.
  const store = createMongoStore(client.db(dbName), { client, closeClient: true, staleReadPreference: 'primary', auditChain })
  try {
    await store.init()
  } catch (err) {
    await store.close()
    throw err
  }
  return {
    store,
    auditChain,
    reopen: async () => {
      const other = await connect(url)
      return createMongoStore(other.db(dbName), { client: other, closeClient: true, staleReadPreference: 'primary', auditChain })
    },
    cleanup: async () => {
      try {
        await client.db(dbName).dropDatabase()
      } finally {
        await store.close()
      }
    }
  }
}

if (uri === undefined || uri === '') {
  storeContract('mongo', async () => { throw new Error('MONGODB_URI is not set') }, { skip: 'MONGODB_URI is not set' })
} else {
  storeContract('mongo', () => open(uri))
}
