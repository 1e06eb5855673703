import assert from 'node:assert/strict'
import { it } from 'node:test'
import { MongoNetworkError, MongoServerError, MongoServerSelectionError, MongoWriteConcernError } from 'mongodb'
import { StoreUnavailableError } from '../../plugins/app/store/errors.ts'
import { isTransientMongoError, withUnavailability } from '../../plugins/app/store/mongo/errors.ts'

// The driver's own error classes, built as the driver builds them from a server reply: no server needed.
const serverError = (code: number, codeName: string, errorLabels?: string[]) => new MongoServerError({ ok: 0, code, codeName, errmsg: codeName, errorLabels })

it('mongo errors: a step-down, a lost primary, a timeout or a lost connection is transient; a duplicate key or a bad query is not', () => {
  assert.equal(isTransientMongoError(serverError(10107, 'NotWritablePrimary')), true)
  assert.equal(isTransientMongoError(serverError(189, 'PrimarySteppedDown')), true)
  assert.equal(isTransientMongoError(serverError(11602, 'InterruptedDueToReplStateChange')), true)
  assert.equal(isTransientMongoError(serverError(50, 'MaxTimeMSExpired')), true)
  assert.equal(isTransientMongoError(serverError(112, 'WriteConflict', ['TransientTransactionError'])), true)
  assert.equal(isTransientMongoError(new MongoNetworkError('connection reset')), true)
  assert.equal(isTransientMongoError(new MongoServerSelectionError('no primary', { type: 'ReplicaSetNoPrimary' } as never)), true)
  assert.equal(isTransientMongoError(new MongoWriteConcernError({ writeConcernError: { code: 91, errmsg: 'shutting down' } } as never)), true)
  assert.equal(isTransientMongoError(serverError(11000, 'DuplicateKey')), false)
  assert.equal(isTransientMongoError(serverError(2, 'BadValue')), false)
  assert.equal(isTransientMongoError(new Error('plain')), false)
  assert.equal(isTransientMongoError(null), false)
})

it('mongo errors: withUnavailability turns transient failures into StoreUnavailableError and leaves the others and the results alone', async () => {
  const methods = withUnavailability({
    ok: async (n: number) => n + 1,
    steppedDown: async () => { throw serverError(10107, 'NotWritablePrimary') },
    duplicate: async () => { throw serverError(11000, 'DuplicateKey') }
  })
  assert.equal(await methods.ok(1), 2)
  await assert.rejects(methods.steppedDown(), (err: unknown) => err instanceof StoreUnavailableError && (err.cause as { code?: number }).code === 10107)
  await assert.rejects(methods.duplicate(), (err: unknown) => err instanceof MongoServerError && err.code === 11000)
})
