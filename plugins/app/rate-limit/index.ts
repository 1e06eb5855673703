import proxyAddr from '@fastify/proxy-addr'
import rateLimit, { type RateLimitOptions } from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest, onRequestHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { AppError, notFoundHandler } from '../errors.ts'
import { clientAddressKey } from './client-address.ts'
import { tierPolicies, type TierName, type TierPolicy } from './policies.ts'
import { TierLimiter } from './tiers.ts'

declare module 'fastify' {
  interface FastifyInstance {
    limiter: TierLimiter
    /** Route `config.rateLimit` for a tier: `{ config: { rateLimit: fastify.tier('auth') } }`. */
    tier (name: Exclude<TierName, 'general' | 'verify' | 'verifyFailures'>): RateLimitOptions
    tierPolicies: Record<TierName, TierPolicy>
    /**
     * The general tier for callers outside RATE_LIMIT_ALLOW_CIDRS, as a route's onRequest hook (health
     * and metrics): `{ onRequest: fastify.allowListed, config: { rateLimit: false } }`.
     */
    allowListed: onRequestHookHandler
  }
}

// Per-address tiers count an IPv6 client by its /64, so rotating through one's own /64 gains nothing.
const byIp = (request: FastifyRequest) => clientAddressKey(request.ip)
const byUser = (request: FastifyRequest) => request.principal?.id ?? `ip:${clientAddressKey(request.ip)}`

/**
 * The rate-limit tiers on @fastify/rate-limit. Its store is ours: counts, progressive blocks and
 * strikes live in Redis when REDIS_URL is set (shared by every process) and fall back to process
 * memory when Redis cannot be reached. The general tier covers every route that names no other
 * tier; health and metrics from RATE_LIMIT_ALLOW_CIDRS are never limited (`allowListed`).
 */
export default fp(async function rateLimitPlugin (fastify: FastifyInstance) {
  const { rateLimits } = fastify.config
  const limiter = new TierLimiter({
    redis: fastify.redis,
    prefix: fastify.config.redis?.prefix ?? 'kw:',
    clock: fastify.clock,
    policy: { blockMs: rateLimits.blockMs, maxBlockMs: rateLimits.maxBlockMs },
    onFallback: (active, err) => {
      if (active) fastify.log.error({ err }, 'rate limits: Redis unreachable, enforcing from process memory')
      else fastify.log.warn('rate limits: Redis reachable again, shared counts resume')
    }
  })

  const policies = tierPolicies(fastify.config)

  // A store for @fastify/rate-limit: each route's child counts under its tier's name, so every
  // route of a tier shares one count per client.
  class TierStore {
    private readonly tier: string
    // @fastify/rate-limit constructs the root store with its own options; children get a tier name.
    constructor (tier: unknown) {
      this.tier = typeof tier === 'string' ? tier : 'general'
    }

    incr (key: string, cb: (err: Error | null, res?: { current: number, ttl: number }) => void, timeWindow: number, max: number) {
      const hit = limiter.hit(this.tier, key, timeWindow, max)
      if (hit instanceof Promise) hit.then((h) => cb(null, { current: h.current, ttl: h.ttl }), (err) => cb(err))
      else cb(null, { current: hit.current, ttl: hit.ttl })
    }

    child (routeOptions: { tier?: string }) {
      return new TierStore(routeOptions.tier ?? this.tier)
    }
  }

  // Whether an address is in RATE_LIMIT_ALLOW_CIDRS, remembered per address text: proxy-addr parses
  // the address on every call, and a load balancer polls health from the same few addresses.
  const inAllowList = proxyAddr.compile(rateLimits.allowCidrs)
  const allowed = new Map<string, boolean>()
  const exempt = (request: FastifyRequest) => {
    let found = allowed.get(request.ip)
    if (found === undefined) {
      if (allowed.size >= 1024) allowed.clear()
      found = inAllowList(request.ip, 0)
      allowed.set(request.ip, found)
    }
    return found
  }

  await fastify.register(rateLimit, {
    global: true,
    max: policies.general.max,
    timeWindow: policies.general.windowMs,
    keyGenerator: byIp,
    store: TierStore as never,
    enableDraftSpec: true,
    errorResponseBuilder: (_request, context) =>
      new AppError(context.statusCode, 'RATE_LIMITED', `Too many requests; retry in ${context.after}`)
  })

  // Requests for unknown routes count in the general tier too (scanners hit mostly 404s).
  fastify.setNotFoundHandler({ preHandler: fastify.rateLimit() }, notFoundHandler)

  fastify.decorate('limiter', limiter)
  fastify.decorate('tierPolicies', policies)
  // An allowed caller answers without entering @fastify/rate-limit (an async hook that reads the
  // route's options on every call); anyone else is counted by its general-tier handler, as on any route.
  const general = fastify.rateLimit()
  fastify.decorate('allowListed', function (this: FastifyInstance, request, reply, done) {
    if (exempt(request)) done()
    else general.call(this, request, reply).then(() => done(), done)
  } satisfies onRequestHookHandler)
  fastify.decorate('tier', (name: Exclude<TierName, 'general' | 'verify' | 'verifyFailures'>): RateLimitOptions => {
    const policy = policies[name]
    return {
      max: policy.max,
      timeWindow: policy.windowMs,
      keyGenerator: policy.keyedBy === 'user' ? byUser : byIp,
      // Per-user tiers count after authentication (onRequest), so the user is known.
      hook: policy.keyedBy === 'user' ? 'preHandler' : 'onRequest',
      tier: name
    } as RateLimitOptions
  })
}, { name: 'rate-limit', dependencies: ['config', 'errors', 'redis', 'clock'] })
