/** The code a KeywardError carries when no answer came from Keyward (refused, reset, timed out). */
export const UNREACHABLE = 'KEYWARD_UNREACHABLE'

/** Every failure of a call to Keyward: an error answer in Keyward's error shape, or no answer at all. */
export class KeywardError extends Error {
  readonly statusCode: number
  readonly code: string
  readonly requestId: string | null
  /** Seconds, from Retry-After, on 429 and 503 answers. */
  readonly retryAfter: number | null

  constructor (statusCode: number, code: string, message: string, requestId: string | null = null, retryAfter: number | null = null, options?: ErrorOptions) {
    super(message, options)
    this.name = 'KeywardError'
    this.statusCode = statusCode
    this.code = code
    this.requestId = requestId
    this.retryAfter = retryAfter
  }

  /** True when Keyward could not answer (unreachable or a 5xx): the case a fail-open policy covers. */
  get unavailable (): boolean {
    return this.code === UNREACHABLE || this.statusCode >= 500
  }
}
