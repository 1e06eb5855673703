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
