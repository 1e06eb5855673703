import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/** The time source for expiry decisions; tests inject their own to move time without waiting. */
export interface Clock { now (): number }

export const systemClock: Clock = { now: () => Date.now() }

declare module 'fastify' {
  interface FastifyInstance {
    clock: Clock
  }
}

export default fp(async function clockPlugin (fastify: FastifyInstance, options: { clock?: Clock }) {
  fastify.decorate('clock', options.clock ?? systemClock)
}, { name: 'clock' })
