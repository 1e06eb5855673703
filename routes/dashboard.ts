import { createRequire } from 'node:module'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import fastifyStatic from '@fastify/static'
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { PAGE_CSP } from '../plugins/app/security-headers.ts'
import pageHelmet from '../plugins/external/helmet.ts'

// public/ is not compiled into dist/: the built server reads the same folder as the sources.
const PAGE_DIR = fileURLToPath(new URL('../public/dashboard/', import.meta.url)).replace('/dist/public/', '/public/')
const UPLOT_DIR = dirname(createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js'))

/** The pages take no input: a query string is refused like on every other route. */
const NO_INPUT = Type.Object({}, { additionalProperties: false })

/**
 * GET /dashboard: the operators' page. The page itself is public (a sign-in form); every figure it
 * shows comes from admin-only endpoints. uPlot is served from Keyward's own dependencies, no CDN.
 * Files carry an ETag and are revalidated on each load (no-cache), so a new release shows at once.
 */
export default async function dashboard (fastify: FastifyInstance) {
  await fastify.register(pageHelmet, { contentSecurityPolicy: PAGE_CSP })
  fastify.addHook('onRoute', (route) => { route.schema = { ...route.schema, hide: true, querystring: NO_INPUT } })
  await fastify.register(fastifyStatic, {
    root: PAGE_DIR,
    prefix: '/dashboard/',
    // One route per file at start-up (no wildcard); the page itself is /dashboard, below.
    wildcard: false,
    globIgnore: ['index.html'],
    cacheControl: false,
    setHeaders: (reply) => { reply.header('cache-control', 'no-cache') }
  })
  fastify.get('/dashboard', (_request, reply) => reply.sendFile('index.html'))
  fastify.get('/dashboard/uplot.js', (_request, reply) => reply.sendFile('uPlot.iife.min.js', UPLOT_DIR))
  fastify.get('/dashboard/uplot.css', (_request, reply) => reply.sendFile('uPlot.min.css', UPLOT_DIR))
}
