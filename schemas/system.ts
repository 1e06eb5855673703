import { Type } from 'typebox'

export const SystemInfo = Type.Object({
  name: Type.Literal('keyward'),
  version: Type.String(),
  node: Type.String(),
  environment: Type.String(),
  pid: Type.Integer(),
  uptimeSeconds: Type.Number(),
  store: Type.Union([Type.Literal('sqlite'), Type.Literal('mongo')]),
  redis: Type.Boolean({ description: 'Whether REDIS_URL is configured' })
}, { additionalProperties: false })

export const RateLimitReport = Type.Object({
  store: Type.Union([Type.Literal('redis'), Type.Literal('memory')], { description: 'Where counts are kept when healthy' }),
  fallbackActive: Type.Boolean({ description: 'Redis is unreachable and limits are enforced from this process\'s memory' }),
  blockMs: Type.Integer(),
  maxBlockMs: Type.Integer(),
  tiers: Type.Array(Type.Object({
    name: Type.String(),
    max: Type.Integer({ description: '0 = off' }),
    windowMs: Type.Integer(),
    keyedBy: Type.String()
  }, { additionalProperties: false })),
  blocked: Type.Array(Type.Object({
    tier: Type.String(),
    client: Type.String({ description: 'IP address (IPv6 by its /64), user id, credential digest, or verify caller (`k:<key id>`, `s:<session id>`, with `/<client>` when given; `a:<address>` for refused credentials)' }),
    retryAfterSeconds: Type.Integer()
  }, { additionalProperties: false })),
  counters: Type.Object({
    refused: Type.Integer(),
    blocks: Type.Integer(),
    fallbackHits: Type.Integer()
  }, { additionalProperties: false })
}, { additionalProperties: false })

export const JobsReport = Type.Object({
  mode: Type.Union([Type.Literal('embedded'), Type.Literal('worker')], { description: 'embedded: this API process schedules the jobs; worker: BullMQ workers do' }),
  leader: Type.Union([Type.Boolean(), Type.Null()], { description: 'Embedded mode: whether this process holds the scheduler lease' }),
  jobs: Type.Array(Type.Object({
    name: Type.String(),
    schedule: Type.String(),
    description: Type.String(),
    nextRunAt: Type.String(),
    lastRun: Type.Union([Type.Object({
      startedAt: Type.String(),
      durationMs: Type.Number(),
      ok: Type.Boolean(),
      error: Type.Union([Type.String(), Type.Null()]),
      result: Type.Record(Type.String(), Type.Unknown())
    }, { additionalProperties: false }), Type.Null()]),
    recentFailures: Type.Integer({ description: 'Failed runs among the last 20' })
  }, { additionalProperties: false }))
}, { additionalProperties: false })

const Minute = Type.Object({
  at: Type.String(),
  requests: Type.Integer(),
  errors: Type.Integer(),
  clientErrors: Type.Integer(),
  slow: Type.Integer(),
  rateLimited: Type.Integer(),
  p50Ms: Type.Number(),
  p95Ms: Type.Number(),
  p99Ms: Type.Number(),
  eventLoopDelayMs: Type.Number(),
  heapUsedBytes: Type.Number(),
  rssBytes: Type.Number(),
  cacheHitRatio: Type.Union([Type.Number(), Type.Null()])
}, { additionalProperties: false })

const Alert = Type.Object({
  name: Type.String(),
  description: Type.String(),
  status: Type.Union([Type.Literal('firing'), Type.Literal('resolved')]),
  value: Type.Number(),
  since: Type.String(),
  resolvedAt: Type.Union([Type.String(), Type.Null()])
}, { additionalProperties: false })

export const SystemStats = Type.Object({
  at: Type.String(),
  process: Type.Object({ pid: Type.Integer(), uptimeSeconds: Type.Number(), node: Type.String(), version: Type.String() }, { additionalProperties: false }),
  memory: Type.Object({ heapUsedBytes: Type.Number(), heapLimitBytes: Type.Number(), rssBytes: Type.Number() }, { additionalProperties: false }),
  eventLoop: Type.Object({ delayP99Ms: Type.Number() }, { additionalProperties: false }),
  requests: Type.Object({
    inFlight: Type.Integer(),
    perSecond: Type.Number({ description: 'Over the last complete minute' }),
    lastMinute: Minute,
    currentMinute: Minute,
    errorRate: Type.Number()
  }, { additionalProperties: false }),
  cache: Type.Object({
    l1: Type.Object({ hits: Type.Integer(), misses: Type.Integer(), size: Type.Integer() }, { additionalProperties: false }),
    l2: Type.Object({ enabled: Type.Boolean(), hits: Type.Integer(), misses: Type.Integer(), errors: Type.Integer() }, { additionalProperties: false })
  }, { additionalProperties: false }),
  rateLimiter: Type.Object({ fallbackActive: Type.Boolean(), refused: Type.Integer(), blocks: Type.Integer() }, { additionalProperties: false }),
  store: Type.Object({ kind: Type.String(), ok: Type.Boolean(), latencyMs: Type.Number() }, { additionalProperties: false }),
  redis: Type.Object({ configured: Type.Boolean(), ok: Type.Boolean() }, { additionalProperties: false }),
  verifications: Type.Record(Type.String(), Type.Integer()),
  jobs: Type.Array(Type.Object({ name: Type.String(), lastRunAt: Type.Union([Type.String(), Type.Null()]), ok: Type.Union([Type.Boolean(), Type.Null()]), recentFailures: Type.Integer() }, { additionalProperties: false })),
  alerts: Type.Object({ open: Type.Array(Alert), recent: Type.Array(Alert) }, { additionalProperties: false })
}, { additionalProperties: false })

export const HistoryQuery = Type.Object({
  from: Type.Optional(Type.String({ format: 'date-time' })),
  to: Type.Optional(Type.String({ format: 'date-time' })),
  resolution: Type.Optional(Type.Union([Type.Literal('minute'), Type.Literal('hour')], { default: 'minute' }))
}, { additionalProperties: false })

export const StatsHistory = Type.Object({
  resolution: Type.String(),
  from: Type.String(),
  to: Type.String(),
  minutes: Type.Array(Minute),
  hours: Type.Array(Type.Object({ at: Type.String(), data: Type.Record(Type.String(), Type.Unknown()) }, { additionalProperties: false }))
}, { additionalProperties: false })
