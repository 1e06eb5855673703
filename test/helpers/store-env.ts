import { randomBytes } from 'node:crypto'

/** Whether this run puts the app on MongoDB (KEYWARD_TEST_STORE=mongo with MONGODB_URI, the CI's MongoDB job). */
export const TEST_ON_MONGO = process.env.KEYWARD_TEST_STORE === 'mongo' && process.env.MONGODB_URI !== undefined

/** Why a SQLite-specific test is skipped on MongoDB, or false where it runs. */
export const SQLITE_ONLY: string | false = TEST_ON_MONGO ? 'tests the SQLite file itself (KEYWARD_TEST_STORE=mongo)' : false

/**
 * The store part of a test app's environment: nothing (a fresh SQLite file) by default, or
 * MONGODB_URI and a database of its own per app, so suites sharing one replica set never see
 * each other's data. The URI must name no database (MONGODB_DB picks it).
 */
export function testStoreEnv (): Record<string, string> {
  if (!TEST_ON_MONGO) return {}
  return { MONGODB_URI: process.env.MONGODB_URI as string, MONGODB_DB: `keyward_test_${randomBytes(6).toString('hex')}` }
}
