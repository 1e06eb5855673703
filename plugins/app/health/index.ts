import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { HealthBodyType } from '../../../schemas/health.ts'

declare module 'fastify' {
  interface FastifyInstance {
    health: { report (): HealthBodyType | Promise<HealthBodyType> }
  }
}

/** Dependency checks are reused for this long, so many load balancers polling cost one check. */
const CHECK_TTL_MS = 1000

interface DependencyState { store: HealthBodyType['store'], redis: HealthBodyType['redis'] }

export default fp(async function healthPlugin (fastify: FastifyInstance) {
  const started = Date.now()
  let last: { at: number, state: DependencyState } | null = null
  let inflight: Promise<DependencyState> | null = null

  async function checkDependencies (): Promise<DependencyState> {
    const storeHealth = await fastify.store.ping()
    let redis: HealthBodyType['redis'] = { configured: false, ok: true }
    if (fastify.redis !== null) {
      const t0 = performance.now()
      const ok = fastify.redis.status === 'ready' && await fastify.redis.ping().then(() => true, () => false)
      redis = { configured: true, ok, latencyMs: ok ? performance.now() - t0 : undefined }
    }
    return {
      store: { kind: fastify.store.kind, ok: storeHealth.ok, latencyMs: storeHealth.latencyMs },
      redis
    }
  }

  /** The last check while it is fresh (no promise, the common case), else the check in flight. */
  function dependencies (): DependencyState | Promise<DependencyState> {
    if (last !== null && Date.now() - last.at < CHECK_TTL_MS) return last.state
    inflight ??= checkDependencies().then((state) => {
      last = { at: Date.now(), state }
      return state
    }).finally(() => { inflight = null })
    return inflight
  }

  function build (deps: DependencyState): HealthBodyType {
    const usage = fastify.memoryUsage()
    const underPressure = fastify.isUnderPressure()
    const status = underPressure || !deps.store.ok ? 'unavailable' : deps.redis.ok ? 'ok' : 'degraded'
    return {
      status,
      uptimeSeconds: Math.round((Date.now() - started) / 1000),
      store: deps.store,
      redis: deps.redis,
      pressure: {
        underPressure,
        eventLoopDelayMs: usage.eventLoopDelay,
        eventLoopUtilization: usage.eventLoopUtilized,
        heapUsedBytes: usage.heapUsed,
        rssBytes: usage.rssBytes
      }
    }
  }

  /** The report: built at once while the dependency check is fresh (load balancers poll often), else after it. */
  function report (): HealthBodyType | Promise<HealthBodyType> {
    const deps = dependencies()
    return deps instanceof Promise ? deps.then(build) : build(deps)
  }

  fastify.decorate('health', { report })
}, { name: 'health', dependencies: ['store', 'redis', 'under-pressure'] })
