/** A change to a revoked key, refused inside the store's transaction (revocation is final). */
export class KeyRevokedError extends Error {
  constructor () {
    super('the key is revoked')
    this.name = 'KeyRevokedError'
  }
}

/**
 * The store could not take its write lock in time (another process holds it). Nothing was
 * written; the request may be retried.
 */
export class StoreBusyError extends Error {
  constructor () {
    super('the store is busy')
    this.name = 'StoreBusyError'
  }
}

export class DuplicateError extends Error {
  constructor (readonly field: string) {
    super(`duplicate ${field}`)
    this.name = 'DuplicateError'
  }
}

/**
 * The store cannot answer now but will soon: a MongoDB primary stepping down, no writable
 * primary, a timeout or an exhausted connection pool. A write may or may not have been applied
 * (the request is safe to retry where the API is idempotent); the cause is kept for the log.
 */
export class StoreUnavailableError extends Error {
  constructor (cause: unknown) {
    super('the store is unavailable', { cause })
    this.name = 'StoreUnavailableError'
  }
}
