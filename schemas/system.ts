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
    client: Type.String({ description: 'IP address, user id, or credential digest' }),
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
