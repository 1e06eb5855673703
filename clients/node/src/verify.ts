import type { operations } from './generated/openapi.ts'
import type { Transport } from './transport.ts'

export type VerifyResult = operations['verifyKey']['responses'][200]['content']['application/json']
export type VerifyCode = VerifyResult['code']

export interface VerifyOptions {
  /** Scopes the call needs; all must be on the key. */
  scopes?: string[]
  /** Units charged to the key's monthly usage when valid (default 1). */
  cost?: number
  /** Your end user (IP address or your id for them), so failures count per end user. */
  client?: string
}

export interface VerifyCacheOptions {
  /**
   * How long a VALID answer is reused, in ms (default 1000, Keyward's own revocation bound): a
   * revoked key may pass for this long plus Keyward's bound. Keys with a usage limit or a per-key
   * rate limit are never cached, so the server counts each of their calls.
   */
  ttlMs?: number
  /** How long a NOT_FOUND answer is reused, in ms (default 1000). */
  notFoundTtlMs?: number
  /** Entries kept at most; the oldest go first (default 10000). */
  maxEntries?: number
}

interface Entry {
  result: VerifyResult
  expiresAt: number
}

const NO_SCOPES: string[] = []

/** A VALID answer may be reused only for keys whose every call the server need not count. */
function cacheable (result: VerifyResult): boolean {
  return result.valid && result.ratelimit === undefined && (result.usage?.limit ?? null) === null
}

function hasScopes (result: VerifyResult, needed: string[]): boolean {
  if (needed.length === 0) return true
  const held = result.scopes ?? NO_SCOPES
  for (const scope of needed) if (!held.includes(scope)) return false
  return true
}

/** verify(key) for the hot path: an optional local cache and one request for concurrent calls. */
export class Verifier {
  readonly #transport: Transport
  readonly #headers: Record<string, string>
  readonly #cache: Map<string, Entry> | null
  readonly #ttlMs: number
  readonly #notFoundTtlMs: number
  readonly #maxEntries: number
  readonly #inFlight = new Map<string, Promise<VerifyResult>>()

  constructor (transport: Transport, token: string, cache: VerifyCacheOptions | false = false) {
    this.#transport = transport
    this.#headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' }
    this.#cache = cache === false ? null : new Map()
    this.#ttlMs = cache === false ? 0 : cache.ttlMs ?? 1000
    this.#notFoundTtlMs = cache === false ? 0 : cache.notFoundTtlMs ?? 1000
    this.#maxEntries = cache === false ? 0 : cache.maxEntries ?? 10_000
  }

  verify (key: string, options: VerifyOptions = {}): Promise<VerifyResult> {
    const scopes = options.scopes ?? NO_SCOPES
    const hit = this.#cached(key, scopes)
    if (hit !== undefined) return Promise.resolve(hit)
    // Calls with different scopes, cost or end user ask different questions: only the same one is shared.
    const flightKey = options.cost === undefined && options.client === undefined && scopes.length === 0
      ? key
      : `${key}\n${scopes.join(' ')}\n${options.cost ?? ''}\n${options.client ?? ''}`
    const pending = this.#inFlight.get(flightKey)
    if (pending !== undefined) return pending.then((result) => cacheable(result) || !result.valid ? result : this.#ask(key, options))
    const request = this.#ask(key, options).finally(() => this.#inFlight.delete(flightKey))
    this.#inFlight.set(flightKey, request)
    return request
  }

  #cached (key: string, scopes: string[]): VerifyResult | undefined {
    if (this.#cache === null) return undefined
    const entry = this.#cache.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= Date.now()) {
      this.#cache.delete(key)
      return undefined
    }
    // A cached VALID answer says which scopes the key holds; one that lacks some asks the server.
    return entry.result.valid && !hasScopes(entry.result, scopes) ? undefined : entry.result
  }

  async #ask (key: string, options: VerifyOptions): Promise<VerifyResult> {
    const body = JSON.stringify({ key, scopes: options.scopes, cost: options.cost, client: options.client })
    const answer = await this.#transport.send('POST', '/api/keys/verify', this.#headers, body)
    const result = answer.body as VerifyResult
    if (this.#cache !== null) this.#remember(key, result)
    return result
  }

  #remember (key: string, result: VerifyResult) {
    const ttl = result.code === 'NOT_FOUND' ? this.#notFoundTtlMs : cacheable(result) ? this.#ttlMs : 0
    if (ttl === 0) return
    let expiresAt = Date.now() + ttl
    // A key that expires within the TTL is not reused past its expiry.
    if (typeof result.expiresAt === 'string') expiresAt = Math.min(expiresAt, Date.parse(result.expiresAt))
    if (this.#cache!.size >= this.#maxEntries) this.#cache!.delete(this.#cache!.keys().next().value!)
    this.#cache!.set(key, { result, expiresAt })
  }
}
