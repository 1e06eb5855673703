import fastifyHelmet, { type FastifyHelmetOptions } from '@fastify/helmet'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/**
 * @fastify/helmet for the HTML pages (the dashboard, /docs, Bull Board), registered inside each
 * page's own encapsulated context with that page's content security policy: its hooks then run on
 * that page's routes only, never on the JSON API (decision 011). Register it before any hook that
 * may answer early (authentication), so those answers carry the page's headers too.
 */
export default fp(async function pageHelmet (fastify: FastifyInstance, options: Pick<FastifyHelmetOptions, 'contentSecurityPolicy'>) {
  // The API's precomputed set would be written over helmet's (reply headers win over raw ones).
  fastify.addHook('onRoute', (route) => { route.config = { ...route.config, securityHeaders: false } })
  await fastify.register(fastifyHelmet, { xFrameOptions: { action: 'deny' }, contentSecurityPolicy: options.contentSecurityPolicy })
}, { name: 'page-helmet' })
