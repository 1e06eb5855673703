import type { Config } from '../../../config.ts'

export type TierName = 'general' | 'auth' | 'keyCreation' | 'heavy' | 'verify' | 'verifyFailures'

export interface TierPolicy { name: TierName, max: number, windowMs: number, keyedBy: 'ip' | 'user' | 'credential' | 'credential+client' }

const HOUR_MS = 3_600_000

/** Keyward's rate-limit tiers, from the configuration. */
export function tierPolicies (config: Config): Record<TierName, TierPolicy> {
  const { rateLimits } = config
  return {
    general: { name: 'general', max: rateLimits.general.max, windowMs: rateLimits.general.windowMs, keyedBy: 'ip' },
    auth: { name: 'auth', max: config.auth.rateLimit.max, windowMs: config.auth.rateLimit.windowMs, keyedBy: 'ip' },
    keyCreation: { name: 'keyCreation', max: config.keys.createPerHour, windowMs: HOUR_MS, keyedBy: 'user' },
    heavy: { name: 'heavy', max: config.keys.heavyPerHour, windowMs: HOUR_MS, keyedBy: 'user' },
    verify: { name: 'verify', max: rateLimits.verify.max, windowMs: rateLimits.verify.windowMs, keyedBy: 'credential' },
    verifyFailures: { name: 'verifyFailures', max: rateLimits.verifyFailures.max, windowMs: rateLimits.verifyFailures.windowMs, keyedBy: 'credential+client' }
  }
}
