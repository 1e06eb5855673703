import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { AppError } from '../app/errors.ts'

/**
 * Rate limiting, opted into per route through `config.rateLimit` (the tiers). Rejections use the
 * one error shape with code RATE_LIMITED; allowed and rejected answers carry RateLimit-* headers.
 */
export default fp(async function rateLimitPlugin (fastify: FastifyInstance) {
  await fastify.register(rateLimit, {
    global: false,
    enableDraftSpec: true,
    errorResponseBuilder: (_request, context) =>
      new AppError(context.statusCode, 'RATE_LIMITED', `Too many requests; retry in ${context.after}`)
  })
}, { name: 'rate-limit', dependencies: ['config'] })
