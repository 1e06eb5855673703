import { hash } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import { AppError, unauthorized } from '../errors.ts'
import type { AuthService } from '../auth/service.ts'
import type { TwoLayerCache } from '../cache/cache.ts'
import type { Clock } from '../clock.ts'
import { isWellFormed, lookupHash } from '../keys/format.ts'
import { monthStart, nextMonthStart } from '../store/shared.ts'
import { iso } from '../time.ts'
import type { Environment, KeyRateLimit, KeyRecord, KeysStore } from '../store/types/index.ts'
import type { TierLimiter } from '../rate-limit/tiers.ts'
import type { UsageMeter } from '../usage/meter.ts'
import { rateLimited, type VerifyFailures } from './failures.ts'
import type { MonthlyCharge, RedisMonthlyUsage } from './monthly-usage.ts'
import type { BucketResult, MemoryBuckets, RedisBuckets } from './token-bucket.ts'
import type { Static } from 'typebox'
import type { VerifyBody } from '../../../schemas/verify.ts'

export type VerifyCode = 'VALID' | 'MALFORMED' | 'NOT_FOUND' | 'DISABLED' | 'REVOKED' | 'EXPIRED' |
  'INSUFFICIENT_SCOPES' | 'RATE_LIMITED' | 'USAGE_EXCEEDED'

export interface VerifyAnswer {
  valid: boolean
  code: VerifyCode
  keyId?: string
  name?: string
  environment?: Environment
  scopes?: string[]
  metadata?: Record<string, unknown>
  expiresAt?: string | null
  usage?: { used: number, limit: number | null, remaining: number | null, resetAt: string }
  ratelimit?: { limit: number, remaining: number, resetAt: string }
}

/** What verification needs of a key, cached per lookup hash (never the secret). */
interface Target {
  keyId: string
  name: string
  environment: Environment
  scopes: string[]
  metadata: Record<string, unknown>
  status: KeyRecord['status']
  expiresAt: number | null
  expiresAtIso: string | null
  /** The hash belongs to a rotated-out version: it verifies until then. */
  graceEndsAt: number | null
  monthlyLimit: number | null
  rateLimit: KeyRateLimit | null
}

export const VERIFY_SCOPE = 'keyward:verify'
/** Positive entries are re-read at least this often, bounding staleness even if a broadcast is lost. */
const TARGET_TTL_MS = 1000
/** Unknown hashes are remembered this long, so made-up (but well-formed) keys cannot hammer the store. */
const NEGATIVE_TTL_MS = 10_000
/** Verified callers are re-checked this often (session revocation reaches verify within this bound). */
const CALLER_TTL_MS = 1000

const answer = (code: VerifyCode): VerifyAnswer => ({ valid: false, code })
const MALFORMED = Object.freeze(answer('MALFORMED'))
const NOT_FOUND = Object.freeze(answer('NOT_FOUND'))

export type VerifyInput = Static<typeof VerifyBody>

/** What a verify call reads of its request (a Fastify request is one). */
export interface VerifyRequest {
  readonly ip: string
  readonly body: VerifyInput
  /** The connection: a backend sends the same credential on every call of a keep-alive connection. */
  readonly raw: { readonly socket: object | null }
}

/** Who is calling verify: the owner whose keys it may check, and the credential itself. */
export interface VerifyCaller {
  ownerId: string
  /** The credential's stable identity: `s:<session id>` for an access token, `k:<key id>` for a verify key. */
  id: string
  expiresAt: number
  /** When the credential must be checked again (CALLER_TTL_MS after it was), whichever memo holds it. */
  freshUntil: number
  /** The verifier's generation when the check began: keys changed since then make it stale at once. */
  generation: number
}

/** The last credential a connection presented and who it resolved to. */
interface ConnectionMemo {
  token: string
  caller: VerifyCaller
}
type Described = Pick<VerifyAnswer, 'keyId' | 'name' | 'environment'>

export interface VerifierDependencies {
  store: KeysStore
  cache: TwoLayerCache
  clock: Clock
  auth: AuthService
  meter: UsageMeter
  buckets: MemoryBuckets | RedisBuckets
  /** Monthly limits charged in Redis across instances; null in embedded mode (decision 006's per-process bound). */
  monthly: RedisMonthlyUsage | null
  hashSecret: string
  /** Counts each caller credential's calls (the verify tier; a max of 0 turns it off). */
  limiter: TierLimiter
  perCaller: { max: number, windowMs: number }
  failures: VerifyFailures
}

/**
 * The hot path. Checks in order: format, lookup, status and expiry, scopes, the key's rate
 * limit, its monthly usage; charges usage only when every check passed. Answers from memory:
 * no store write happens on the request path.
 */
export class Verifier {
  /**
   * Resolved callers by credential digest. The TTL bounds staleness in real time whatever the
   * injected clock says; key changes make entries stale by generation, never by `clear()`:
   * lru-cache resets all of its `max` slots on a clear (about 0.3 ms at 100,000).
   */
  private readonly callers = new LRUCache<string, VerifyCaller>({ max: 100_000, ttl: CALLER_TTL_MS })
  /** Per connection: the same credential string again skips its digest and the LRU (same 1 s bound). */
  private readonly connections = new WeakMap<object, ConnectionMemo>()
  /** Bumped when keys change: every caller resolved before, in the LRU or a connection's memo, is stale. */
  private generation = 0
  readonly counts: Record<VerifyCode, number> = {
    VALID: 0, MALFORMED: 0, NOT_FOUND: 0, DISABLED: 0, REVOKED: 0, EXPIRED: 0, INSUFFICIENT_SCOPES: 0, RATE_LIMITED: 0, USAGE_EXCEEDED: 0
  }

  private resetCache = { month: 0, until: 0, text: '' }
  /** The last bucket refill time written out: the calls of one millisecond share its text. */
  private bucketResetMs = Number.NaN
  private bucketResetText = ''

  constructor (private readonly deps: VerifierDependencies) {}

  /** The owner's key with this lookup hash (current or rotated-out version), from memory when it can. */
  private target (ownerId: string, hash: string): Target | null | Promise<Target | null> {
    const key = `verify:${ownerId}:${hash}`
    const hit = this.deps.cache.peek<Target | null>(key)
    if (hit !== undefined) return hit.value
    return this.deps.cache.get<Target | null>(key, async () => {
      const found = await this.deps.store.findVersionByHash(ownerId, hash)
      if (found === null) return null
      const { key, version } = found
      return {
        keyId: key.id,
        name: key.name,
        environment: key.environment,
        scopes: key.scopes,
        metadata: key.metadata,
        status: key.status,
        expiresAt: key.expiresAt,
        expiresAtIso: iso(key.expiresAt),
        graceEndsAt: version.version === key.version ? null : (version.graceEndsAt ?? 0),
        monthlyLimit: key.monthlyLimit,
        rateLimit: key.rateLimit
      }
    }, { l2: false, ttlMs: TARGET_TTL_MS, ttlFor: (t) => (t === null ? NEGATIVE_TTL_MS : TARGET_TTL_MS) })
  }

  /** The status code of a found key at `now`, or null when it may be used. */
  private statusCode (t: Target, now: number): VerifyCode | null {
    if (t.status === 'revoked') return 'REVOKED'
    if (t.status === 'disabled') return 'DISABLED'
    if (t.status === 'expired' || (t.expiresAt !== null && t.expiresAt <= now)) return 'EXPIRED'
    if (t.graceEndsAt !== null && t.graceEndsAt <= now) return 'EXPIRED'
    return null
  }

  /**
   * One verify call: the caller's credential (a refused one counts in the verify-failure tier), its
   * per-caller limit, the key check, then the verify-failure tier. The cached path answers without
   * awaiting anything or allocating; misses fall back to promises. The client address is read only
   * when a credential is refused (behind a proxy, reading it parses the forwarding headers).
   */
  verifyRequest (token: string | null, request: VerifyRequest): VerifyAnswer | Promise<VerifyAnswer> {
    if (token === null) throw unauthorized('A bearer access token or verify key is required')
    const socket = request.raw.socket
    const memo = socket === null ? undefined : this.connections.get(socket)
    if (memo !== undefined && memo.token === token && this.isFresh(memo.caller)) {
      return this.limited(memo.caller, token, request.body)
    }
    const caller = this.caller(token)
    if (caller instanceof Promise) {
      return caller.then((resolved) => {
        if (socket !== null) this.remember(socket, token, resolved)
        return this.limited(resolved, token, request.body)
      }, (err) => this.deps.failures.refusedCredential(request.ip, err))
    }
    if (socket !== null) this.remember(socket, token, caller)
    return this.limited(caller, token, request.body)
  }

  private limited (caller: VerifyCaller, token: string, input: VerifyInput): VerifyAnswer | Promise<VerifyAnswer> {
    return this.deps.perCaller.max > 0 ? this.perCallerLimit(token).then(() => this.screened(caller, input)) : this.screened(caller, input)
  }

  private async perCallerLimit (token: string) {
    const { max, windowMs } = this.deps.perCaller
    // Keyed by the credential (its digest), so each backend key or session has its own budget.
    const hit = await this.deps.limiter.hit('verify', hash('sha256', token, 'base64url'), windowMs, max)
    if (hit.blocked) throw rateLimited(max, 0, hit.ttl)
  }

  private screened (caller: VerifyCaller, input: VerifyInput): VerifyAnswer | Promise<VerifyAnswer> {
    const result = this.verify(caller.ownerId, input)
    return result instanceof Promise
      ? result.then((r) => this.deps.failures.screen(caller.id, input.client, r))
      : this.deps.failures.screen(caller.id, input.client, result)
  }

  private isFresh (caller: VerifyCaller): boolean {
    if (caller.generation !== this.generation) return false
    const now = this.deps.clock.now()
    return caller.freshUntil > now && caller.expiresAt > now
  }

  private remember (socket: object, token: string, caller: VerifyCaller) {
    const memo = this.connections.get(socket)
    if (memo === undefined) this.connections.set(socket, { token, caller })
    else {
      memo.token = token
      memo.caller = caller
    }
  }

  /** Resolves the bearer credential of a verify call to its caller (the cached object: no allocation on a hit). */
  caller (token: string): VerifyCaller | Promise<VerifyCaller> {
    // One-shot hashing (no hash object per call): the cache is keyed by a digest, never the credential.
    const id = hash('sha256', token, 'base64url')
    const cached = this.callers.get(id)
    if (cached !== undefined && this.isFresh(cached)) return cached
    return this.resolveCaller(id, token)
  }

  private async resolveCaller (digest: string, token: string): Promise<VerifyCaller> {
    // Captured before any wait: a caller resolved while keys changed is born stale.
    const generation = this.generation
    let caller: VerifyCaller
    if (token.split('.').length === 3) {
      const principal = await this.deps.auth.authenticate(token)
      caller = { ownerId: principal.id, id: `s:${principal.sessionId}`, expiresAt: principal.expiresAt, freshUntil: this.deps.clock.now() + CALLER_TTL_MS, generation }
    } else {
      const key = isWellFormed(token) ? await this.deps.store.findCredentialByHash(lookupHash(token, this.deps.hashSecret)) : null
      const now = this.deps.clock.now()
      if (key === null || key.status !== 'active' || (key.expiresAt !== null && key.expiresAt <= now) || !key.scopes.includes(VERIFY_SCOPE)) {
        throw new AppError(401, 'INVALID_CREDENTIAL', 'The credential is not an access token or an active key with the keyward:verify scope')
      }
      caller = { ownerId: key.ownerId, id: `k:${key.id}`, expiresAt: key.expiresAt ?? Number.MAX_SAFE_INTEGER, freshUntil: now + CALLER_TTL_MS, generation }
    }
    this.callers.set(digest, caller)
    return caller
  }

  /** Answers synchronously when everything it needs is in memory (the common case), else a promise. */
  verify (ownerId: string, input: VerifyInput): VerifyAnswer | Promise<VerifyAnswer> {
    if (!isWellFormed(input.key)) return this.count(MALFORMED)
    // Only the caller's own keys can be found: another owner's key answers exactly like an unknown one.
    const t = this.target(ownerId, lookupHash(input.key, this.deps.hashSecret))
    if (t instanceof Promise) return t.then((loaded) => this.decide(ownerId, loaded, input))
    return this.decide(ownerId, t, input)
  }

  private count (answer: VerifyAnswer): VerifyAnswer {
    this.counts[answer.code]++
    return answer
  }

  private decide (ownerId: string, t: Target | null, input: VerifyInput): VerifyAnswer | Promise<VerifyAnswer> {
    if (t === null) return this.count(NOT_FOUND)
    const now = this.deps.clock.now()
    const described: Described = { keyId: t.keyId, name: t.name, environment: t.environment }
    const status = this.statusCode(t, now)
    if (status !== null) return this.count({ valid: false, code: status, ...described })
    if (input.scopes !== undefined && input.scopes.length > 0 && !t.scopes.includes('*')) {
      for (const scope of input.scopes) {
        if (!t.scopes.includes(scope)) return this.count({ valid: false, code: 'INSUFFICIENT_SCOPES', ...described, scopes: t.scopes })
      }
    }
    if (t.rateLimit !== null) {
      const bucket = this.deps.buckets.take(t.keyId, t.rateLimit, now)
      return bucket instanceof Promise
        ? bucket.then((b) => this.afterBucket(ownerId, t, input, now, described, b))
        : this.afterBucket(ownerId, t, input, now, described, bucket)
    }
    return this.charge(ownerId, t, input, now, described, undefined)
  }

  private afterBucket (ownerId: string, t: Target, input: VerifyInput, now: number, described: Described, bucket: BucketResult) {
    const limit = t.rateLimit as KeyRateLimit
    const ratelimit = { limit: limit.limit, remaining: bucket.remaining, resetAt: this.bucketReset(bucket.resetAt) }
    if (!bucket.allowed) return this.count({ valid: false, code: 'RATE_LIMITED', ...described, ratelimit })
    return this.charge(ownerId, t, input, now, described, ratelimit)
  }

  private charge (ownerId: string, t: Target, input: VerifyInput, now: number, described: Described, ratelimit: VerifyAnswer['ratelimit']) {
    const used = this.deps.meter.used(ownerId, t.keyId)
    this.resetAt(now)
    if (t.monthlyLimit !== null && this.deps.monthly !== null) return this.chargeShared(ownerId, t, input, now, described, ratelimit, used)
    // After waiting, re-read: calls that waited on the same refresh must see each other's charges.
    return used instanceof Promise
      ? used.then(() => this.settleHere(ownerId, t, input, described, ratelimit, this.deps.meter.usedNow(t.keyId)))
      : this.settleHere(ownerId, t, input, described, ratelimit, used)
  }

  /** A limited key with Redis: the shared counter decides; this process's view only if Redis is unreachable. */
  private async chargeShared (ownerId: string, t: Target, input: VerifyInput, now: number, described: Described, ratelimit: VerifyAnswer['ratelimit'], used: number | Promise<number>) {
    const known = used instanceof Promise ? await used : used
    const shared: MonthlyCharge | null = await (this.deps.monthly as RedisMonthlyUsage).charge(t.keyId, this.resetCache.month, this.resetCache.until, input.cost ?? 1, t.monthlyLimit as number, known, now)
    if (shared === null) return this.settleHere(ownerId, t, input, described, ratelimit, this.deps.meter.usedNow(t.keyId))
    return this.settle(ownerId, t, input, described, ratelimit, shared.allowed, shared.used)
  }

  /** The monthly decision from this process's view (embedded mode, and Redis unreachable). */
  private settleHere (ownerId: string, t: Target, input: VerifyInput, described: Described, ratelimit: VerifyAnswer['ratelimit'], used: number): VerifyAnswer {
    const allowed = t.monthlyLimit === null || used + (input.cost ?? 1) <= t.monthlyLimit
    return this.settle(ownerId, t, input, described, ratelimit, allowed, used)
  }

  private settle (ownerId: string, t: Target, input: VerifyInput, described: Described, ratelimit: VerifyAnswer['ratelimit'], allowed: boolean, used: number): VerifyAnswer {
    const cost = input.cost ?? 1
    const resetAt = this.resetCache.text
    const limit = t.monthlyLimit
    if (!allowed) {
      return this.count({ valid: false, code: 'USAGE_EXCEEDED', ...described, usage: { used, limit, remaining: Math.max(0, (limit as number) - used), resetAt }, ratelimit })
    }
    this.deps.meter.charge(ownerId, t.keyId, cost)
    return this.count({
      valid: true,
      code: 'VALID',
      ...described,
      scopes: t.scopes,
      metadata: t.metadata,
      expiresAt: t.expiresAtIso,
      usage: { used: used + cost, limit, remaining: limit === null ? null : limit - used - cost, resetAt },
      ratelimit
    })
  }

  /** A bucket's refill time as ISO text, computed again only when the millisecond changes. */
  private bucketReset (ms: number): string {
    if (ms !== this.bucketResetMs) {
      this.bucketResetText = iso(ms)
      this.bucketResetMs = ms
    }
    return this.bucketResetText
  }

  /** The start of the next UTC month as ISO text, computed once per month. */
  private resetAt (now: number): string {
    if (now >= this.resetCache.until) {
      const next = nextMonthStart(now)
      this.resetCache = { month: monthStart(now), until: next, text: iso(next) }
    }
    return this.resetCache.text
  }

  /** Drops the cached targets of these keys' lookup hashes in every process (after a change). */
  async forget (ownerId: string, keyIds: string[]) {
    const hashes: string[] = []
    for (const keyId of keyIds) {
      for (const version of await this.deps.store.listKeyVersions(ownerId, keyId)) {
        if (version.hash !== null) hashes.push(version.hash)
      }
    }
    await this.forgetHashes(ownerId, hashes)
  }

  async forgetHashes (ownerId: string, hashes: string[]) {
    // First: every caller resolved before this change is stale from now on, even if a delete fails.
    this.generation++
    for (const hash of hashes) await this.deps.cache.delete(`verify:${ownerId}:${hash}`)
  }
}
