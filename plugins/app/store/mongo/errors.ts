import { StoreUnavailableError } from '../errors.ts'

/** Server codes of a replica set in transition (step-down, election, shutdown) or of an operation out of time. */
const TRANSITION_CODES = new Set([
  6, // HostUnreachable
  7, // HostNotFound
  50, // MaxTimeMSExpired
  89, // NetworkTimeout
  91, // ShutdownInProgress
  189, // PrimarySteppedDown
  262, // ExceededTimeLimit
  9001, // SocketException
  10107, // NotWritablePrimary
  11600, // InterruptedAtShutdown
  11602, // InterruptedDueToReplStateChange
  13435, // NotPrimaryNoSecondaryOk
  13436, // NotPrimaryOrSecondary
  64 // WriteConcernTimeout (WriteConcernFailed before 8.1)
])

/** Driver errors that mean "no server to talk to now": selection, network, pool and timeout failures. */
const TRANSITION_NAMES = new Set([
  'MongoServerSelectionError',
  'MongoNetworkError',
  'MongoNetworkTimeoutError',
  'MongoPoolClearedError',
  'MongoWaitQueueTimeoutError',
  'MongoOperationTimeoutError',
  'MongoTopologyClosedError',
  'MongoNotConnectedError'
])

/** Labels the driver and server attach to errors that a retry a moment later can get past. */
const TRANSITION_LABELS = ['RetryableWriteError', 'TransientTransactionError', 'UnknownTransactionCommitResult', 'PoolRequestedRetry']

interface DriverErrorShape {
  name?: unknown
  code?: unknown
  errorLabels?: unknown
  writeConcernError?: { code?: unknown }
}

/**
 * Whether a MongoDB failure is the replica set's transition rather than a fault of the request.
 * Duck-typed like isDuplicateKey, so an error from another copy of the driver counts too.
 */
export function isTransientMongoError (err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false
  const e = err as DriverErrorShape
  if (typeof e.name === 'string' && TRANSITION_NAMES.has(e.name)) return true
  if (TRANSITION_CODES.has(Number(e.code)) || TRANSITION_CODES.has(Number(e.writeConcernError?.code))) return true
  const labels = e.errorLabels
  return Array.isArray(labels) && TRANSITION_LABELS.some((label) => labels.includes(label))
}

/**
 * The store's methods, each rethrowing a transient MongoDB failure as StoreUnavailableError, so
 * the API answers 503 STORE_UNAVAILABLE with Retry-After instead of 500 while a primary is elected.
 */
export function withUnavailability<T extends object> (methods: T): T {
  const guarded: Record<string, unknown> = {}
  for (const [name, method] of Object.entries(methods)) {
    guarded[name] = typeof method !== 'function'
      ? method
      : async function guardedMethod (...args: unknown[]) {
        try {
          return await (method as (...a: unknown[]) => Promise<unknown>)(...args)
        } catch (err) {
          throw isTransientMongoError(err) ? new StoreUnavailableError(err) : err
        }
      }
  }
  return guarded as T
}
