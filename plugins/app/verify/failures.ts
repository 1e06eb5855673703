import { LRUCache } from 'lru-cache'
import { AppError } from '../errors.ts'
import type { Clock } from '../clock.ts'
import { clientAddressKey } from '../rate-limit/client-address.ts'
import type { TierLimiter } from '../rate-limit/tiers.ts'

const TIER = 'verifyFailures'

export function rateLimited (max: number, remaining: number, ttlMs: number) {
  const seconds = Math.max(1, Math.ceil(ttlMs / 1000))
  return new AppError(429, 'RATE_LIMITED', `Too many requests; retry in ${seconds} seconds`, {
    'retry-after': String(seconds),
    'ratelimit-limit': String(max),
    'ratelimit-remaining': String(remaining),
    'ratelimit-reset': String(seconds)
  })
}

/**
 * The verify-failure tier. It counts only calls that fail (MALFORMED, NOT_FOUND, a refused
 * credential) and refuses only those, so a key that verifies is never refused because of other
 * keys' failures: guesses cost the guesser, not the backend relaying them. Failures count per
 * caller credential, or per caller and end user when the backend names one (`client`); refused
 * credentials count per client address (an IPv6 client by its /64).
 */
export class VerifyFailures {
  // Blocks this process has seen, until when: a blocked guesser's failures are refused without a
  // store round trip. Only blocked clients enter it, so churn through clients costs nothing here.
  private readonly blockedUntil = new LRUCache<string, number>({ max: 100_000 })

  constructor (
    private readonly limiter: TierLimiter,
    private readonly policy: { max: number, windowMs: number },
    private readonly clock: Clock
  ) {}

  /** The answer itself unless it is a failure over the limit (then a 429, the exceeding call included). */
  screen<Answer extends { code: string }> (callerId: string, client: string | undefined, answer: Answer): Answer | Promise<Answer> {
    if (answer.code !== 'MALFORMED' && answer.code !== 'NOT_FOUND') return answer
    // The caller id holds no '/', so the first one separates it from the end user's identity.
    return this.count(client === undefined ? callerId : `${callerId}/${clientAddressKey(client)}`).then(() => answer)
  }

  /** Rethrows why a credential was refused; a 401 counts per client address, and is a 429 once over the limit. */
  refusedCredential (address: string, err: unknown): Promise<never> {
    if ((err as { statusCode?: number }).statusCode !== 401) return Promise.reject(err)
    return this.count(`a:${clientAddressKey(address)}`).then(() => { throw err })
  }

  private async count (key: string): Promise<void> {
    const until = this.blockedUntil.get(key)
    if (until !== undefined) {
      const left = until - this.clock.now()
      if (left > 0) throw rateLimited(this.policy.max, 0, left)
    }
    const hit = await this.limiter.hit(TIER, key, this.policy.windowMs, this.policy.max)
    if (!hit.blocked) return
    this.blockedUntil.set(key, this.clock.now() + hit.ttl)
    throw rateLimited(this.policy.max, 0, hit.ttl)
  }
}
