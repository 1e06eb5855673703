import { KeywardError } from './errors.ts'
import type { Keyward } from './client.ts'
import type { VerifyCode, VerifyOptions, VerifyResult } from './verify.ts'

/** A refusal the middleware sends: the status, the body and, for 429 and 503, the seconds to wait. */
export interface Refusal {
  statusCode: 401 | 403 | 429 | 503
  code: VerifyCode | 'MISSING_KEY' | 'KEYWARD_UNAVAILABLE'
  message: string
  retryAfter: number | null
}

export type UnavailableEvent = { error: KeywardError, failOpen: boolean }

export interface GuardOptions {
  /** The client that verifies (build one with `new Keyward({ baseUrl, token, cache })`). */
  keyward: Keyward
  /** Where callers send their key: `authorization` (as `Bearer <key>`, the default) or another header such as `x-api-key`. */
  header?: string
  /** Scopes every protected request needs. */
  scopes?: string[]
  /** Units charged per request (default 1). */
  cost?: number
  /** Let requests through when Keyward cannot answer (default false: 503). */
  failOpen?: boolean
  /** Called whenever Keyward cannot answer, whichever the policy: log it, count it. */
  onUnavailable?: (event: UnavailableEvent) => void
  /** The body of a refusal (default `{ statusCode, code, message }`). */
  errorBody?: (refusal: Refusal) => unknown
}

const STATUS: Record<VerifyCode, Refusal['statusCode'] | null> = {
  VALID: null,
  MALFORMED: 401,
  NOT_FOUND: 401,
  DISABLED: 401,
  REVOKED: 401,
  EXPIRED: 401,
  INSUFFICIENT_SCOPES: 403,
  RATE_LIMITED: 429,
  USAGE_EXCEEDED: 429
}

const MISSING: Refusal = { statusCode: 401, code: 'MISSING_KEY', message: 'An API key is required', retryAfter: null }

function secondsUntil (iso: string | undefined): number | null {
  if (iso === undefined) return null
  return Math.max(1, Math.ceil((Date.parse(iso) - Date.now()) / 1000))
}

export function defaultErrorBody (refusal: Refusal) {
  return { statusCode: refusal.statusCode, code: refusal.code, message: refusal.message }
}

/** The outcome for one request: the verify answer to attach, a refusal to send, or neither (failed open). */
export interface Outcome {
  result: VerifyResult | null
  refusal: Refusal | null
}

/** The framework-free part of both middlewares: read the key, verify it, map the answer. */
export class Guard {
  readonly #keyward: Keyward
  readonly #header: string
  readonly #bearer: boolean
  readonly #verifyOptions: VerifyOptions
  readonly #failOpen: boolean
  readonly #onUnavailable: ((event: UnavailableEvent) => void) | undefined
  readonly errorBody: (refusal: Refusal) => unknown

  constructor (options: GuardOptions) {
    this.#keyward = options.keyward
    this.#header = (options.header ?? 'authorization').toLowerCase()
    this.#bearer = this.#header === 'authorization'
    this.#verifyOptions = { scopes: options.scopes, cost: options.cost }
    this.#failOpen = options.failOpen ?? false
    this.#onUnavailable = options.onUnavailable
    this.errorBody = options.errorBody ?? defaultErrorBody
  }

  /** The caller's key from the configured header, or undefined. */
  keyOf (headers: Record<string, string | string[] | undefined>): string | undefined {
    const value = headers[this.#header]
    if (typeof value !== 'string' || value === '') return undefined
    if (!this.#bearer) return value
    return value.startsWith('Bearer ') && value.length > 7 ? value.slice(7) : undefined
  }

  async check (headers: Record<string, string | string[] | undefined>): Promise<Outcome> {
    const key = this.keyOf(headers)
    if (key === undefined) return { result: null, refusal: MISSING }
    try {
      const result = await this.#keyward.verify(key, this.#verifyOptions)
      const statusCode = STATUS[result.code]
      if (statusCode === null) return { result, refusal: null }
      const retryAfter = statusCode === 429 ? secondsUntil(result.code === 'RATE_LIMITED' ? result.ratelimit?.resetAt : result.usage?.resetAt) : null
      return { result, refusal: { statusCode, code: result.code, message: `The API key was refused: ${result.code}`, retryAfter } }
    } catch (error) {
      return this.#unavailable(error)
    }
  }

  #unavailable (error: unknown): Outcome {
    const failure = error instanceof KeywardError ? error : new KeywardError(503, 'KEYWARD_UNAVAILABLE', String(error))
    // Keyward's own 429 (too many failed verifications from this backend) is the caller's answer too.
    if (failure.statusCode === 429) {
      return { result: null, refusal: { statusCode: 429, code: 'RATE_LIMITED', message: 'Too many failed verifications', retryAfter: failure.retryAfter } }
    }
    // Fail open only when Keyward cannot answer; a refused backend credential is a configuration error.
    const failOpen = this.#failOpen && failure.unavailable
    this.#onUnavailable?.({ error: failure, failOpen })
    if (failOpen) return { result: null, refusal: null }
    return { result: null, refusal: { statusCode: 503, code: 'KEYWARD_UNAVAILABLE', message: 'API keys cannot be checked right now', retryAfter: failure.retryAfter } }
  }
}
