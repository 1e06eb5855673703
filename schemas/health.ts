import { Type, type Static } from 'typebox'

const Dependency = Type.Object({
  configured: Type.Boolean(),
  ok: Type.Boolean(),
  latencyMs: Type.Optional(Type.Number())
}, { additionalProperties: false })

export const HealthBody = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('degraded'), Type.Literal('unavailable')], {
    description: 'ok: serving normally; degraded: serving without a shared dependency (Redis); unavailable: take out of rotation'
  }),
  uptimeSeconds: Type.Number(),
  store: Type.Object({
    kind: Type.Union([Type.Literal('sqlite'), Type.Literal('mongo')]),
    ok: Type.Boolean(),
    latencyMs: Type.Number()
  }, { additionalProperties: false }),
  redis: Dependency,
  pressure: Type.Object({
    underPressure: Type.Boolean(),
    eventLoopDelayMs: Type.Number(),
    eventLoopUtilization: Type.Number(),
    heapUsedBytes: Type.Number(),
    rssBytes: Type.Number()
  }, { additionalProperties: false })
}, { additionalProperties: false })

export type HealthBodyType = Static<typeof HealthBody>
