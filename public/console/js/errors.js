// API error codes in words. The API's own message follows, so nothing it says is lost.
const WORDS = {
  VALIDATION_FAILED: 'Not accepted',
  MALFORMED_JSON: 'The request was not understood',
  BAD_REQUEST: 'Not accepted',
  BAD_URL: 'The address was not understood',
  UNSUPPORTED_MEDIA_TYPE: 'The request was not understood',
  NOT_ACCEPTABLE: 'The request was not understood',
  METHOD_NOT_ALLOWED: 'Not allowed',
  URI_TOO_LONG: 'The address is too long',
  HEADERS_TOO_LARGE: 'The request is too large',
  REQUEST_TIMEOUT: 'The request took too long',
  INVALID_CURSOR: 'That page of the list is gone; start from the first page',
  UNAUTHORIZED: 'Please sign in again',
  NOT_SIGNED_IN: 'Please sign in',
  INVALID_CREDENTIAL: 'Not accepted as a credential',
  INVALID_TOKEN: 'Please sign in again',
  TOKEN_EXPIRED: 'Your session expired',
  SESSION_REVOKED: 'This session was ended',
  INVALID_CREDENTIALS: 'Wrong email or password',
  INVALID_REFRESH_TOKEN: 'Please sign in again',
  REFRESH_TOKEN_REUSED: 'Signed out for safety',
  EMAIL_TAKEN: 'This email already has an account',
  WEAK_PASSWORD: 'Choose a stronger password',
  WRONG_PASSWORD: 'Wrong password',
  WRONG_PASSPHRASE: 'Wrong passphrase',
  PASSPHRASE_NOT_SET: 'Set your vault passphrase first',
  PASSPHRASE_ALREADY_SET: 'A vault passphrase is already set',
  NOT_RECOVERABLE: 'This key has no stored copy to reveal',
  SECRET_UNREADABLE: 'The stored secret cannot be read',
  KEY_REVOKED: 'This key is revoked',
  KEY_EXPIRED: 'This key has expired',
  NOT_FOUND: 'Not found',
  FORBIDDEN: 'Not allowed',
  CONFLICT: 'Changed by someone else',
  TOO_MANY_TAGS: 'Too many tags',
  WEBHOOK_URL_FORBIDDEN: 'This address cannot receive webhooks',
  RATE_LIMITED: 'Too many requests',
  PAYLOAD_TOO_LARGE: 'Too large',
  STORE_BUSY: 'The server is busy',
  SERVICE_BUSY: 'The server is busy',
  STORE_UNAVAILABLE: 'The server is unavailable',
  SERVICE_UNAVAILABLE: 'The server is unavailable',
  INTERNAL_ERROR: 'Something went wrong on the server',
  CSRF_INVALID: 'The page is out of date; reload it',
  NETWORK: 'No connection to Keyward'
}

// Codes that always concern one field of the form that sent them.
const FIELD_OF_CODE = {
  EMAIL_TAKEN: 'email',
  WEAK_PASSWORD: 'password',
  WRONG_PASSPHRASE: 'passphrase',
  WEBHOOK_URL_FORBIDDEN: 'url',
  TOO_MANY_TAGS: 'tags'
}

/** A failed API call: the error body's code and message, the field it concerns, when to retry. */
export class ApiError extends Error {
  constructor (status, body, retryAfterSeconds) {
    super(body.message || 'Request failed')
    this.status = status
    this.code = body.code || 'ERROR'
    this.requestId = body.requestId || null
    this.field = fieldOf(this.code, this.message)
    this.retryAt = retryAfterSeconds > 0 ? new Date(Date.now() + retryAfterSeconds * 1000) : null
  }

  /** What the person reads: the code in words, then the API's message (its field name dropped). */
  get text () {
    const detail = this.field === null ? this.message : this.message.replace(/^(body|querystring|params)\/[\w.]+ /, '')
    const retry = this.retryAt === null ? '' : ` You can try again at ${this.retryAt.toLocaleTimeString()}.`
    const headline = WORDS[this.code]
    return (headline === undefined || headline === detail ? detail : `${headline}: ${detail}`) + retry
  }
}

function fieldOf (code, message) {
  if (FIELD_OF_CODE[code] !== undefined) return FIELD_OF_CODE[code]
  const path = /^(?:body|querystring|params)\/(\w+)/.exec(message)
  if (path !== null) return path[1]
  const named = /(?:required|unknown) field '(\w+)'/.exec(message)
  return named === null ? null : named[1]
}

/** Any thrown value as an ApiError (a bug in the page shows as a message, not as nothing). */
export function asApiError (err) {
  // The page's own checks (a metadata typo) throw { field, text } like an API error.
  return err instanceof ApiError || typeof err?.text === 'string' ? err : new ApiError(0, { code: 'ERROR', message: String(err?.message ?? err) }, 0)
}
